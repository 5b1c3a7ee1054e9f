"""Storing: a fetched body checked as an image, written once under its content hash, recorded, and
its message handed to the publisher.

Checking runs in a decode pool, its decoders' memory reserved in the decode budget first (estimated
from the header, which also refuses what the header alone shows is wrong); reading that header is
itself under the budget, for what the bytes alone say it costs (``open_memory``). Writing is atomic (a
temporary file, fsync, rename), in a write pool. Each source URL of an image gets one message (the
indexer merges them into the image's one point, so the point lists every URL); the file is written once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import weakref
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial

from downloader import metrics
from downloader.budget import ByteBudget
from downloader.image_files import CheckedImage, check_image, message_for
from downloader.publisher import Publisher
from downloader.settings import DownloaderSettings
from downloader.state_db import UrlStateStore
from dyimages_common.images.checks import decode_memory, header_suffices, open_memory
from dyimages_common.images.storage import remove_stale_temp_files, write_atomic

log = logging.getLogger(__name__)


class ImageKeeper:
    """Checks, writes and records images; owns the decode and write pools."""

    def __init__(self, settings: DownloaderSettings, state: UrlStateStore, publisher: Publisher) -> None:
        self.settings = settings
        self._state = state
        self._publisher = publisher
        self.stored: set[str] = set()  # SHA-256 of every image on disk
        self.decode_budget = ByteBudget(settings.downloader_max_decode_bytes, metrics.DECODE_BYTES)
        self._image_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._decode_pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="decode")
        self._write_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="write")

    def remove_stale_temp_files(self) -> asyncio.Future[None]:
        """A killed downloader may leave half-written temporary files (never a half image)."""

        def remove() -> None:
            removed = remove_stale_temp_files(self.settings.images_dir)
            if removed:
                log.info("removed %d temporary file(s) left by an earlier run", removed)

        return asyncio.get_running_loop().run_in_executor(self._write_pool, remove)

    def shutdown(self) -> None:
        self._decode_pool.shutdown()
        self._write_pool.shutdown()

    async def check(self, data: bytes, *, decode: bool = True, sha256: str | None = None) -> CheckedImage:
        """Check ``data`` in the decode pool, its decode memory reserved in the decode budget meanwhile.

        ``decode=False`` (a photo of the library, which the embedding service decodes itself): a
        camera's format is checked from its header alone (``inspect_image``), so only opening it is
        reserved. ``sha256``: the bytes' hash when the caller has it (a library file is hashed as read)."""
        loop = asyncio.get_running_loop()
        limits = {"max_bytes": self.settings.max_image_bytes, "max_pixels": self.settings.max_image_pixels}
        # Opening reads the header and builds what Pillow keeps from the metadata (a WebP's canvas too):
        # estimated from the bytes alone first, so that the first open is under the budget as well.
        opening = await loop.run_in_executor(self._decode_pool, lambda: open_memory(data, **limits))
        need = opening
        if decode or not header_suffices(data):
            reservation = await self.decode_budget.reserve(opening)
            try:
                need = await loop.run_in_executor(self._decode_pool, lambda: decode_memory(data, **limits))
            finally:
                reservation.release()
        reservation = await self.decode_budget.reserve(need)
        try:
            checking = partial(check_image, data, **limits, decode=decode, sha256=sha256)
            return await loop.run_in_executor(self._decode_pool, checking)
        finally:
            reservation.release()

    async def keep(self, url: str, attempts: int, data: bytes, image: CheckedImage) -> None:
        """Store a new image, or record the URL as one more source of a stored one; queue its message."""
        lock = self._image_locks.get(image.sha256)
        if lock is None:
            lock = asyncio.Lock()
            self._image_locks[image.sha256] = lock
        async with lock:
            body = message_for(image, url, datetime.now(UTC)).model_dump_json()
            duplicate = image.sha256 in self.stored
            if not duplicate:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._write_pool, write_atomic, self.settings.images_dir, image.path, data)
            await self._state.record_done(url, attempts, image.sha256, image.path, body)
            if duplicate:
                log.info(
                    "%s has the same bytes as an image already stored; adding it as a source",
                    url,
                    extra={"url": url, "sha256": image.sha256},
                )
            self.stored.add(image.sha256)
            self._publisher.submit(url, body)
