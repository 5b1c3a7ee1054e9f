"""Reading one settled library file: its bytes, their SHA-256, and for a content not seen before the checks.

Bounded like a download: the file's size is reserved in the downloader's byte budget before it is read
(at most MAX_IMAGE_BYTES, known from the stat without reading), and the checks run in the downloader's
decode pool under its decode budget (:meth:`downloader.storing.ImageKeeper.check`). A file whose stat
changed while it was read is not recorded: its bytes may be half old and half new, and it settles again.

A camera's photo (JPEG, HEIF, AVIF) is checked from its header and structure, not decoded: the
embedding service decodes it once, at the scale the model needs, and a photo it cannot decode comes
back to this folder's state with its reason (:mod:`dyimages_common.library.refusal`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from pathlib import Path
from typing import TypeVar

from downloader.budget import ByteBudget
from downloader.library import metrics
from downloader.library.ledger import Read, Refused
from downloader.storing import ImageKeeper
from dyimages_common.images.checks import ImageRejected
from dyimages_common.images.storage import sha256_hex
from dyimages_common.library.paths import LibraryFileError, read_library_file
from dyimages_common.library.state import ImageFacts
from dyimages_common.library.walk import Stat, look_at
from dyimages_common.reasons import Reason

T = TypeVar("T")


def with_cpu(stage: str, work: Callable[[], T]) -> T:
    """Run ``work`` on this thread, counting its CPU time under ``stage``."""
    started = time.thread_time()
    try:
        return work()
    finally:
        metrics.CPU_SECONDS.labels(stage).inc(time.thread_time() - started)


class ChangedWhileRead(Exception):
    """The file's stat changed while it was read."""


class PhotoReader:
    """Turns a settled path into a :class:`Read` or a :class:`Refused` (None: it changed while read)."""

    def __init__(
        self,
        root: Path,
        *,
        max_bytes: int,
        keeper: ImageKeeper,
        budget: ByteBudget,
        pool: Executor,
        known_content: Callable[[str], Awaitable[bool]],
    ) -> None:
        self.root = root
        self._real_root = root.resolve()
        self._max_bytes = max_bytes
        self._keeper = keeper
        self._budget = budget
        self._pool = pool
        self._known_content = known_content

    async def read(self, path: str, stat: Stat) -> Read | Refused | None:
        if stat.size > self._max_bytes:
            return Refused(path, Reason.TOO_LARGE, f"{stat.size} bytes is over the limit of {self._max_bytes}", stat)
        if stat.size == 0:
            return Refused(path, Reason.NOT_AN_IMAGE, "an empty file (0 bytes)", stat)
        reservation = await self._budget.reserve(stat.size)
        try:
            loop = asyncio.get_running_loop()
            try:
                data, sha256 = await loop.run_in_executor(
                    self._pool, lambda: with_cpu("read_hash", lambda: self._read_and_hash(path, stat))
                )
            except LibraryFileError as exc:
                return Refused(path, exc.reason, exc.detail, stat)
            except ChangedWhileRead:
                return None
            if await self._known_content(sha256):
                return Read(path, stat, sha256)  # a rename the inode did not show, a copy, a touch: no check
            try:
                checked = await self._keeper.check(data, decode=False, sha256=sha256)  # the service decodes it
            except ImageRejected as exc:
                return Refused(path, exc.reason, exc.detail, stat)
        finally:
            reservation.release()
        info = checked.info
        facts = ImageFacts(
            content_type=info.content_type,
            width=info.width,
            height=info.height,
            bytes=checked.size,
            taken_at=info.exif.taken_at,
            camera=info.exif.camera,
            orientation=info.exif.orientation,
        )
        return Read(path, stat, sha256, facts)

    def _read_and_hash(self, path: str, stat: Stat) -> tuple[bytes, str]:
        data = read_library_file(self.root, path, self._max_bytes)
        if look_at(self.root, self._real_root, path) != stat:
            raise ChangedWhileRead(path)
        return data, sha256_hex(data)
