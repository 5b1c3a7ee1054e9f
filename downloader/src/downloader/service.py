"""The downloader as one asyncio service: watch URLS_FILE, fetch, store, record, publish.

One task per URL, bounded three ways: a window on how many URL tasks exist at once (memory), a
per-host semaphore taken first (so a host with thousands of URLs waits on its own limit without
holding global slots that other hosts could use), then the global concurrency semaphore. Retries
of transient failures back off outside both, holding no slot. The image bodies held at once are
bounded in bytes (``downloader.budget``), from before the body is read until the image is stored,
and so is the decoders' memory, from before an image is decoded until it is.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from downloader import metrics
from downloader.budget import ByteBudget
from downloader.fetch import Fetched, Fetcher, FetchFailed, open_session
from downloader.guard import AddressPolicy
from downloader.publisher import Publisher
from downloader.refetch import ControlQueueConsumer
from downloader.settings import DownloaderSettings
from downloader.slots import DownloadSlots
from downloader.state_db import UrlStateStore
from downloader.storing import ImageKeeper
from downloader.url_file import UrlFileReader
from downloader.url_status import UrlBook, format_counts
from dyimages_common.backoff import async_retrying
from dyimages_common.images.checks import ImageRejected
from dyimages_common.library.refusal import LibraryRefusal
from dyimages_common.process.supervisor import Supervisor, every, finish_within
from dyimages_common.urls.refetch import RetryRequest

log = logging.getLogger(__name__)

FINISHED = frozenset({"done", "failed"})


class UrlFileMissing(RuntimeError):
    """``--once`` with no URL file: the downloader cannot do its job."""


class _NotStarted(Exception):
    """A download that got its slot after the stop request: left for the next start."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, FetchFailed) and exc.transient


class Downloader:
    def __init__(self, settings: DownloaderSettings) -> None:
        self.settings = settings
        self.supervisor = Supervisor()
        self.stop_requested = self.supervisor.stop_requested
        self._state = UrlStateStore(settings.state_db_path)
        self._book = UrlBook(
            self._state, summary_s=settings.downloader_summary_s, max_attempts=settings.downloader_max_attempts
        )
        self._backlog: deque[str] = deque()
        self._queued: set[str] = set()  # in the backlog or being handled
        self.internal_errors = 0  # bugs or a broken disk, not bad URLs: --once then exits non-zero
        self._backlog_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._window = asyncio.Semaphore(max(2048, settings.downloader_concurrency * 32))
        self._slots = DownloadSlots(concurrency=settings.downloader_concurrency, per_host=settings.downloader_per_host)
        self._in_flight = self._slots.in_flight
        self.budget = ByteBudget(settings.downloader_max_inflight_bytes, metrics.INFLIGHT_BYTES)
        self._publisher = Publisher(
            settings, self._state.mark_published, retry_max_s=settings.downloader_broker_retry_max_s
        )
        self._keeper = ImageKeeper(settings, self._state, self._publisher)
        self._fetcher: Fetcher | None = None

    def counts(self) -> dict[str, int]:
        return self._book.counts()

    @property
    def decode_budget(self) -> ByteBudget:
        return self._keeper.decode_budget

    @property
    def unconfirmed(self) -> int:
        """Messages submitted to the broker and not yet confirmed."""
        return self._publisher.unconfirmed

    @property
    def busy(self) -> bool:
        return bool(self._backlog or self._tasks or self._publisher.unconfirmed)

    # Running.

    async def run(self, *, once: bool) -> None:
        snapshot = self._state.snapshot()
        self._book.load(snapshot)
        self._keeper.stored = snapshot.stored
        for url, body in snapshot.unpublished:
            self._publisher.submit(url, body)
        if snapshot.urls:
            log.info("resuming: %s; %d message(s) to publish", format_counts(self.counts()), len(snapshot.unpublished))
        self._state.start()
        cleanup = self._keeper.remove_stale_temp_files()
        async with open_session(
            AddressPolicy(self.settings.allowed_networks),
            connect_timeout_s=self.settings.downloader_connect_timeout_s,
            concurrency=self.settings.downloader_concurrency,
            per_host=self.settings.downloader_per_host,
            user_agent=self.settings.downloader_user_agent,
        ) as session:
            self._fetcher = Fetcher(
                session,
                max_bytes=self.settings.max_image_bytes,
                max_redirects=self.settings.downloader_max_redirects,
                timeout_s=self.settings.downloader_timeout_s,
                budget=self.budget,
            )
            self.supervisor.start("publisher", self._publisher.run())
            self.supervisor.start("feeder", self._feed())
            self.supervisor.start("summary", every(self.settings.downloader_summary_s, self._log_summary))
            if not once:  # `dyimages retry` and the status page's button, through the control queue
                consumer = ControlQueueConsumer(
                    self.settings, self, retry_max_s=self.settings.downloader_broker_retry_max_s
                )
                self.supervisor.start("retry-requests", consumer.run())
            try:
                await self._watch(once=once)
            finally:
                await self._shut_down()
        await cleanup
        self._keeper.shutdown()
        await self._state.close()
        self._book.log_summary(self._publisher.unconfirmed, final=True)

    def _log_summary(self) -> None:
        self._book.log_summary(self._publisher.unconfirmed)

    async def _watch(self, *, once: bool) -> None:
        reader = UrlFileReader(self.settings.urls_file)
        while not self.stop_requested.is_set():
            urls = reader.read_if_changed(complete_last_line=once)
            if urls is None and once:
                raise UrlFileMissing(f"URL file {self.settings.urls_file} does not exist")
            if urls is not None:
                await self._schedule(urls)
            if once:
                break
            await self.supervisor.sleep(self.settings.downloader_poll_s)
        if once:
            while self.busy and not self.stop_requested.is_set():
                await self.supervisor.sleep(0.05)

    async def retry_failed(self, request: RetryRequest) -> list[str]:
        """Reset the failed URLs ``request`` matches to pending and fetch them again."""
        urls = await self._state.reset_failed(request.matches)
        for url in urls:
            self._book.set_status(url, "pending", 0)
        await self._schedule(urls)
        return urls

    async def refuse_library_files(self, refusal: LibraryRefusal) -> list[str]:  # no PHOTOS_DIR: nothing to record
        return []

    async def _schedule(self, urls: list[str]) -> None:
        new = [url for url in urls if url not in self._book.known]
        if new:
            await self._state.add_pending(new)
            for url in new:
                self._book.set_status(url, "pending", 0)
            log.info("%d new URL(s) in %s", len(new), self.settings.urls_file)
        for url in urls:
            known = self._book.known[url]
            if known.status not in FINISHED and url not in self._queued:
                self._queued.add(url)
                self._backlog.append(url)
        self._backlog_ready.set()

    async def _feed(self) -> None:
        """Start a task per backlog URL, never more than the window allows at once."""
        while True:
            if not self._backlog:
                self._backlog_ready.clear()
                await self._backlog_ready.wait()
                continue
            await self._window.acquire()
            url = self._backlog.popleft()
            task = asyncio.create_task(self._handle(url), name=f"url:{url[:80]}")
            self._tasks.add(task)
            task.add_done_callback(self._task_finished)

    def _task_finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._window.release()
        if not task.cancelled() and task.exception() is not None:
            self.internal_errors += 1
            log.error("%s: the download failed unexpectedly", task.get_name(), exc_info=task.exception())

    # One URL.

    async def _handle(self, url: str) -> None:
        attempts = self._book.known[url].attempts
        remaining = max(1, self.settings.downloader_max_attempts - attempts)
        retrying = async_retrying(
            attempts=remaining,
            initial=self.settings.downloader_retry_initial_s,
            maximum=self.settings.downloader_retry_max_s,
            when=_is_transient,
            log_retries=False,  # UrlBook.retrying says it, with the URL
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    try:
                        await self._attempt(url, attempts)
                    except FetchFailed as failure:
                        if failure.transient and attempts < self.settings.downloader_max_attempts:
                            await self._book.retrying(url, attempts, failure.reason, failure.detail)
                        raise
        except (FetchFailed, ImageRejected) as failure:
            await self._book.failed(url, attempts, failure.reason, failure.detail)
        except _NotStarted:
            pass  # stopping: the URL stays pending for the next start
        finally:
            self._queued.discard(url)

    async def _attempt(self, url: str, attempts: int) -> None:
        """One try: fetched under its slots (:mod:`downloader.slots`), then checked and stored while the
        body slot and its bytes in the budget (at most DOWNLOADER_MAX_INFLIGHT_BYTES, or one larger
        body alone) are still held."""
        async with self._slots.fetched(url, self._fetch) as fetched:
            image = await self._keeper.check(fetched.data)
            await self._keeper.keep(url, attempts, fetched.data, image)
            self._book.done(url, attempts)

    async def _fetch(self, url: str) -> Fetched:
        assert self._fetcher is not None
        if self.stop_requested.is_set():
            raise _NotStarted
        started = time.monotonic()
        fetched = await self._fetcher.fetch(url)
        metrics.DOWNLOAD_SECONDS.observe(time.monotonic() - started)
        return fetched

    # Shutdown.

    async def _shut_down(self) -> None:
        """Let in-flight work finish within the grace period, then abandon it cleanly.

        An abandoned download leaves nothing behind: files appear only by an atomic rename, a
        URL stays pending or retrying in the state and is fetched at the next start, and a
        message not yet confirmed is published at the next start.
        """
        grace = self.settings.downloader_shutdown_grace_s
        self.supervisor.helper("feeder").cancel()
        for task in self._tasks - self._in_flight:
            task.cancel()  # waiting for a slot or a retry: nothing to finish
        if self._in_flight:
            log.info("stopping: waiting up to %.0f s for %d download(s) in flight", grace, len(self._in_flight))
            await finish_within(self._in_flight, grace)
        for task in set(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._publisher.unconfirmed and self._publisher.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._publisher.wait_idle(), timeout=grace)
        await self.supervisor.cancel_helpers()
