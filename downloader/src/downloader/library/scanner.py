"""The photo library scanner: look at PHOTOS_DIR, read what changed once it holds still, record, publish.

It runs inside the downloader as a second input beside the URL file, and shares its checks (the decode
pool and its memory budget), its bound on bytes held at once and its way of publishing with confirms.
Why polling, not inotify: a bind mount from Docker Desktop (macOS, Windows) and a NAS share over SMB
or NFS deliver no inotify events for changes made on the host or by another machine, and a restart
must compare the folder with the state anyway. A look costs one ``lstat`` per photo, so it is
repeated every DOWNLOADER_LIBRARY_POLL_S, but never more often than ten times its own duration (at
most a tenth of a core for a large library); files still settling are looked at on their own
meanwhile, every DOWNLOADER_LIBRARY_SETTLE_S.

A file is read (and hashed) only when it is new or its stat changed, once that stat held still for
the settle time, and only if it still has that stat after the read. A content already known (a rename
found by inode, a copy, a file touched without a change) is not checked again, and the indexer embeds
only content that has no point yet.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

from downloader.budget import ByteBudget
from downloader.library import metrics
from downloader.library.changes import Known, Settling, plan_changes
from downloader.library.ledger import Changes, LibraryLedger, Read, Refused, apply_to_known
from downloader.library.reader import PhotoReader, with_cpu
from downloader.publisher import Publisher
from downloader.settings import DownloaderSettings
from downloader.storing import ImageKeeper
from dyimages_common.library.refusal import LibraryRefusal
from dyimages_common.library.state import library_state_path
from dyimages_common.library.walk import LibraryMissing, Refusal, Stat, look_at, walk_library
from dyimages_common.urls.refetch import RetryRequest

log = logging.getLogger(__name__)

T = TypeVar("T")
CHUNK = 64  # files recorded per transaction while a pass reads
SCAN_SHARE = 10  # a look at the folder comes at most every SCAN_SHARE times its duration


class LibraryScanner:
    """Indexes PHOTOS_DIR in place through the downloader's checks and a publisher of its own."""

    def __init__(self, settings: DownloaderSettings, keeper: ImageKeeper, budget: ByteBudget) -> None:
        assert settings.photos_dir is not None
        self.settings = settings
        self.root: Path = settings.photos_dir
        self._keeper = keeper
        self._budget = budget
        self._db_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="library-state")
        self._readers = ThreadPoolExecutor(settings.downloader_library_readers, thread_name_prefix="library-read")
        self._settling = Settling(settings.downloader_library_settle_s)
        self.publisher = Publisher(settings, self._confirmed, retry_max_s=settings.downloader_broker_retry_max_s)
        self._ledger: LibraryLedger | None = None
        self._known: dict[str, Known] = {}
        self._missing_warned = False
        self._held_warned = 0  # the held count last warned about: said once per change, not every look
        self._reader = PhotoReader(
            self.root,
            max_bytes=settings.max_image_bytes,
            keeper=keeper,
            budget=budget,
            pool=self._readers,
            known_content=lambda sha256: self._db(lambda: self.ledger.has_facts(sha256)),
        )
        self.caught_up = asyncio.Event()  # a whole pass found nothing settling, and every change is recorded

    @property
    def busy(self) -> bool:
        return not self.caught_up.is_set() or bool(self.publisher.unconfirmed)

    async def _db(self, call: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._db_thread, call)

    @property
    def ledger(self) -> LibraryLedger:
        if self._ledger is None:
            raise RuntimeError("the library state is not open")
        return self._ledger

    async def _confirmed(self, keys: list[str]) -> None:
        await self._db(lambda: self.ledger.mark_published(keys))

    async def open(self) -> None:
        """Open the state and queue what an earlier run recorded but the broker never confirmed."""
        path = library_state_path(self.settings.state_db_path)
        self._ledger = await self._db(lambda: LibraryLedger(path))
        self._known = await self._db(self.ledger.known)
        unpublished = await self._db(self.ledger.unpublished)
        for key, body in unpublished:
            self.publisher.submit(key, body)
        log.info(
            "photo library %s: %d file(s) known, %d message(s) to publish",
            self.root,
            len(self._known),
            len(unpublished),
        )

    async def run(self) -> None:
        """Look at the folder again and again until cancelled."""
        try:
            while True:
                seconds = await self.look()
                deadline = time.monotonic() + max(self.settings.downloader_library_poll_s, SCAN_SHARE * seconds)
                while time.monotonic() < deadline:
                    wait = min(deadline - time.monotonic(), self.settings.downloader_library_settle_s)
                    await asyncio.sleep(max(wait, 0.05))
                    if len(self._settling):
                        await self._look_at_settling()
        finally:
            await self.close()

    async def close(self) -> None:
        if self._ledger is not None:
            ledger, self._ledger = self._ledger, None
            with contextlib.suppress(Exception):
                await self._db(ledger.close)
        self._readers.shutdown(wait=False, cancel_futures=True)
        self._db_thread.shutdown(wait=False)

    async def look(self) -> float:
        """One look at the whole folder and what it leads to; returns how long the look took."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        try:
            walk = await loop.run_in_executor(self._readers, lambda: with_cpu("scan", lambda: walk_library(self.root)))
        except LibraryMissing as exc:
            if not self._missing_warned:
                log.warning("%s; nothing is indexed or removed until it is back", exc)
                self._missing_warned = True
            return time.perf_counter() - started
        self._missing_warned = False
        planning = time.perf_counter()
        plan = plan_changes(self._known, walk, self._settling, time.monotonic())
        looked_s = walk.seconds + time.perf_counter() - planning  # a look: stat everything, compare with the state
        metrics.SCAN_SECONDS.observe(looked_s)
        if plan.held and plan.held != self._held_warned:
            log.warning(
                "%d known photo(s) not seen but kept: their folder cannot be listed, or PHOTOS_DIR is empty", plan.held
            )
        self._held_warned = plan.held
        tail = Changes(
            renamed=plan.renamed,
            gone=plan.gone,
            refused=[Refused(path, r.reason, r.detail, r.stat) for path, r in plan.refused.items()],
        )
        await self._read_and_record(plan.ready, tail)
        self._count()
        if not len(self._settling):
            self.caught_up.set()
        if plan.changes:
            log.info(
                "photo library: %d read, %d renamed, %d gone, %d refused, %d unchanged, %d settling (look: %.2f s)",
                len(plan.ready),
                len(plan.renamed),
                len(plan.gone),
                len(plan.refused),
                plan.unchanged,
                len(self._settling),
                looked_s,
            )
        return looked_s

    async def _look_at_settling(self) -> None:
        """Between whole looks: the settling files alone, each read once it held still."""
        real_root = self.root.resolve()
        ready: dict[str, Stat] = {}
        now = time.monotonic()
        for path in self._settling.paths():
            found = look_at(self.root, real_root, path)
            if isinstance(found, Stat):
                if self._settling.settled(path, found, now):
                    ready[path] = found
            elif not isinstance(found, Refusal):
                self._settling.keep_only(p for p in self._settling.paths() if p != path)
        if ready:
            await self._read_and_record(ready, Changes())
            self._count()
        if not len(self._settling):
            self.caught_up.set()

    def _count(self) -> None:
        done = sum(1 for entry in self._known.values() if entry.status == "done")
        metrics.FILES.labels("done").set(done)
        metrics.FILES.labels("failed").set(len(self._known) - done)
        metrics.FILES.labels("settling").set(len(self._settling))

    async def _read_and_record(self, ready: dict[str, Stat], tail: Changes) -> None:
        """Read the settled files (a few at once), recording them in chunks; ``tail`` goes with the last."""
        slots = asyncio.Semaphore(self.settings.downloader_library_readers)
        chunk = Changes()

        async def one(path: str, stat: Stat) -> Read | Refused | None:
            async with slots:
                return await self._reader.read(path, stat)

        tasks = [asyncio.ensure_future(one(path, stat)) for path, stat in ready.items()]
        try:
            for done in asyncio.as_completed(tasks):
                outcome = await done
                if isinstance(outcome, Read):
                    chunk.read.append(outcome)
                elif isinstance(outcome, Refused):
                    chunk.refused.append(outcome)
                if len(chunk.read) + len(chunk.refused) >= CHUNK:
                    await self._record(chunk)
                    chunk = Changes()
        finally:
            for task in tasks:
                task.cancel()
        chunk.renamed, chunk.gone = tail.renamed, tail.gone
        chunk.refused += tail.refused
        await self._record(chunk)

    async def _record(self, changes: Changes) -> None:
        if not changes:
            return
        messages = await self._db(lambda: self.ledger.record(changes))
        apply_to_known(self._known, changes)
        for key, body in messages:
            self.publisher.submit(key, body)

    async def refuse(self, refusal: LibraryRefusal) -> list[str]:
        """Record the paths of ``refusal`` that still hold its bytes as refused, with its reason; the
        image's message then lists the paths left (none: its point, if any, goes)."""
        refused, messages = await self._db(lambda: self.ledger.refuse_content(refusal))
        apply_to_known(self._known, Changes(refused=refused))
        for key, body in messages:
            self.publisher.submit(key, body)
        return [row.path for row in refused]

    async def retry(self, request: RetryRequest) -> list[str]:
        """Forget the refused files the request matches; the next look reads them again."""
        paths = await self._db(lambda: self.ledger.reset_failed(request.matches))
        for path in paths:
            self._known.pop(path, None)
        return paths
