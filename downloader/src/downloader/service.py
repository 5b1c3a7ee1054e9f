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
import os
import signal
import time
import weakref
from collections import Counter, deque
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, wait_random_exponential
from tenacity.wait import wait_base
from yarl import URL

from downloader import metrics
from downloader.budget import ByteBudget
from downloader.fetch import Fetched, Fetcher, FetchFailed
from downloader.guard import AddressPolicy, guarded_connector
from downloader.intake import CheckedImage, check_image, message_for
from downloader.publisher import Publisher
from downloader.retry_requests import RetryRequestConsumer
from downloader.settings import DownloaderSettings
from downloader.state import KnownUrl, UrlStateStore
from downloader.url_file import UrlFileReader
from dyimages_common.images import ImageRejected, decode_memory
from dyimages_common.retry_requests import RetryRequest
from dyimages_common.storage import remove_stale_temp_files, write_atomic
from dyimages_common.url_state import STATUSES

log = logging.getLogger(__name__)

FINISHED = frozenset({"done", "failed"})


class UrlFileMissing(RuntimeError):
    """``--once`` with no URL file: the downloader cannot do its job."""


class _BackoffOrRetryAfter(wait_base):
    """Exponential backoff with full jitter, or the server's Retry-After when that is longer."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_random_exponential(multiplier=initial, max=maximum)
        self._maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        hinted = getattr(failure, "retry_after", None) or 0.0
        return min(self._maximum, max(backoff, hinted))


class _NotStarted(Exception):
    """A download that got its slot after the stop request: left for the next start."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, FetchFailed) and exc.transient


class Downloader:
    def __init__(self, settings: DownloaderSettings) -> None:
        self.settings = settings
        self.stop_requested = asyncio.Event()
        self._state = UrlStateStore(settings.state_db_path)
        self._known: dict[str, KnownUrl] = {}
        self._stored: set[str] = set()
        self._counts: Counter[str] = Counter()
        self._backlog: deque[str] = deque()
        self._queued: set[str] = set()  # in the backlog or being handled
        self.internal_errors = 0  # bugs or a broken disk, not bad URLs: --once then exits non-zero
        self._backlog_ready = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._in_flight: set[asyncio.Task[None]] = set()  # tasks past their slots: fetching or storing
        self._window = asyncio.Semaphore(max(2048, settings.downloader_concurrency * 32))
        self._global_slots = asyncio.Semaphore(settings.downloader_concurrency)
        self._body_slots = asyncio.Semaphore(settings.downloader_concurrency * 4)
        self.budget = ByteBudget(settings.downloader_max_inflight_bytes, metrics.INFLIGHT_BYTES)
        self.decode_budget = ByteBudget(settings.downloader_max_decode_bytes, metrics.DECODE_BYTES)
        self._host_slots: weakref.WeakValueDictionary[str, asyncio.Semaphore] = weakref.WeakValueDictionary()
        self._image_locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        self._decode_pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="decode")
        self._write_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="write")
        self._publisher = Publisher(
            settings, self._state.mark_published, retry_max_s=settings.downloader_broker_retry_max_s
        )
        self._fetcher: Fetcher | None = None
        self._downloaded_since_summary = 0

    # Bookkeeping.

    def _set_status(self, url: str, status: str, attempts: int) -> None:
        previous = self._known.get(url)
        if previous is not None:
            self._counts[previous.status] -= 1
            metrics.URLS.labels(previous.status).set(self._counts[previous.status])
        self._known[url] = KnownUrl(status, attempts)
        self._counts[status] += 1
        metrics.URLS.labels(status).set(self._counts[status])

    def counts(self) -> dict[str, int]:
        return {status: self._counts[status] for status in STATUSES}

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
        for status in STATUSES:
            metrics.URLS.labels(status).set(0)
        for url, known in snapshot.urls.items():
            self._set_status(url, known.status, known.attempts)
        self._stored = snapshot.stored
        for url, body in snapshot.unpublished:
            self._publisher.submit(url, body)
        if snapshot.urls:
            log.info("resuming: %s; %d message(s) to publish", _format_counts(self.counts()), len(snapshot.unpublished))
        self._state.start()
        cleanup = asyncio.get_running_loop().run_in_executor(self._write_pool, self._remove_stale_temp_files)
        policy = AddressPolicy(self.settings.allowed_networks)
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self.settings.downloader_connect_timeout_s, sock_read=None
        )
        connector = guarded_connector(
            policy, limit=self.settings.downloader_concurrency, limit_per_host=self.settings.downloader_per_host
        )
        headers = {"User-Agent": self.settings.downloader_user_agent, "Accept": "image/*,*/*;q=0.5"}
        async with aiohttp.ClientSession(
            connector=connector, timeout=timeout, headers=headers, trust_env=False, auto_decompress=True
        ) as session:
            self._fetcher = Fetcher(
                session,
                max_bytes=self.settings.max_image_bytes,
                max_redirects=self.settings.downloader_max_redirects,
                timeout_s=self.settings.downloader_timeout_s,
                budget=self.budget,
            )
            helpers = [
                asyncio.create_task(self._publisher.run(), name="publisher"),
                asyncio.create_task(self._feed(), name="feeder"),
                asyncio.create_task(self._summarise_forever(), name="summary"),
            ]
            if not once:  # `dyimages retry` and the status page's button, through the control queue
                consumer = RetryRequestConsumer(
                    self.settings, self.retry_failed, retry_max_s=self.settings.downloader_broker_retry_max_s
                )
                helpers.append(asyncio.create_task(consumer.run(), name="retry-requests"))
            try:
                await self._watch(once=once, helpers=helpers)
            finally:
                await self._shut_down(helpers)
        await cleanup
        self._decode_pool.shutdown()
        self._write_pool.shutdown()
        await self._state.close()
        self._log_summary(final=True)

    def _remove_stale_temp_files(self) -> None:
        """A killed downloader may leave half-written temporary files (never a half image)."""
        removed = remove_stale_temp_files(self.settings.images_dir)
        if removed:
            log.info("removed %d temporary file(s) left by an earlier run", removed)

    async def _watch(self, *, once: bool, helpers: list[asyncio.Task[Any]]) -> None:
        reader = UrlFileReader(self.settings.urls_file)
        while not self.stop_requested.is_set():
            urls = reader.read_if_changed(complete_last_line=once)
            if urls is None and once:
                raise UrlFileMissing(f"URL file {self.settings.urls_file} does not exist")
            if urls is not None:
                await self._schedule(urls)
            if once:
                break
            await self._wait_stop_or_failure(helpers, seconds=self.settings.downloader_poll_s)
        if once:
            while self.busy and not self.stop_requested.is_set():
                await self._wait_stop_or_failure(helpers, seconds=0.05)

    async def _wait_stop_or_failure(self, helpers: list[asyncio.Task[Any]], *, seconds: float) -> None:
        """Sleep ``seconds``; wake early on a stop request; re-raise if a helper task died."""
        stopper = asyncio.ensure_future(self.stop_requested.wait())
        try:
            await asyncio.wait([stopper, *helpers], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        for helper in helpers:
            if helper.done():
                helper.result()  # raises what killed it
                raise RuntimeError(f"{helper.get_name()} stopped unexpectedly")

    async def retry_failed(self, request: RetryRequest) -> list[str]:
        """Reset the failed URLs ``request`` matches to pending and fetch them again."""
        urls = await self._state.reset_failed(request.matches)
        for url in urls:
            self._set_status(url, "pending", 0)
        await self._schedule(urls)
        return urls

    async def _schedule(self, urls: list[str]) -> None:
        new = [url for url in urls if url not in self._known]
        if new:
            await self._state.add_pending(new)
            for url in new:
                self._set_status(url, "pending", 0)
            log.info("%d new URL(s) in %s", len(new), self.settings.urls_file)
        for url in urls:
            known = self._known[url]
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

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = URL(url).host or ""
        slot = self._host_slots.get(host)
        if slot is None:
            slot = asyncio.Semaphore(self.settings.downloader_per_host)
            self._host_slots[host] = slot
        return slot

    async def _handle(self, url: str) -> None:
        attempts = self._known[url].attempts
        remaining = max(1, self.settings.downloader_max_attempts - attempts)
        retrying = AsyncRetrying(
            stop=stop_after_attempt(remaining),
            wait=_BackoffOrRetryAfter(self.settings.downloader_retry_initial_s, self.settings.downloader_retry_max_s),
            retry=retry_if_exception(_is_transient),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    attempts += 1
                    try:
                        await self._attempt(url, attempts)
                    except FetchFailed as failure:
                        if failure.transient and attempts < self.settings.downloader_max_attempts:
                            await self._record_retrying(url, attempts, failure)
                        raise
        except (FetchFailed, ImageRejected) as failure:
            await self._record_failed(url, attempts, failure.reason, failure.detail)
        except _NotStarted:
            pass  # stopping: the URL stays pending for the next start
        finally:
            self._queued.discard(url)

    async def _attempt(self, url: str, attempts: int) -> None:
        """One try. Slots are taken host first, so waiting on a busy host holds nothing else; the
        body slot and the body's bytes in the budget are kept until the image is stored, so however
        much faster the network is than the decoder, at most ``4 x concurrency`` bodies, and at most
        DOWNLOADER_MAX_INFLIGHT_BYTES of them (or one larger body alone), wait in memory."""
        current = asyncio.current_task()
        assert current is not None
        host_slot = self._host_slot(url)
        async with host_slot:
            await self._body_slots.acquire()
            try:
                async with self._global_slots:
                    self._in_flight.add(current)
                    fetched = await self._fetch(url)
            except BaseException:
                self._in_flight.discard(current)
                self._body_slots.release()
                raise
        try:
            image = await self._check(fetched.data)
            await self._keep(url, attempts, fetched.data, image)
        finally:
            self._in_flight.discard(current)
            self._body_slots.release()
            if fetched.reservation is not None:
                fetched.reservation.release()

    async def _check(self, data: bytes) -> CheckedImage:
        """Check ``data`` in the decode pool, its decode memory (estimated from the header, which also
        refuses what the header alone shows is wrong) reserved in the decode budget meanwhile."""
        loop = asyncio.get_running_loop()
        limits = {"max_bytes": self.settings.max_image_bytes, "max_pixels": self.settings.max_image_pixels}
        need = await loop.run_in_executor(self._decode_pool, lambda: decode_memory(data, **limits))
        reservation = await self.decode_budget.reserve(need)
        try:
            return await loop.run_in_executor(self._decode_pool, lambda: check_image(data, **limits))
        finally:
            reservation.release()

    async def _fetch(self, url: str) -> Fetched:
        assert self._fetcher is not None
        if self.stop_requested.is_set():
            raise _NotStarted
        started = time.monotonic()
        fetched = await self._fetcher.fetch(url)
        metrics.DOWNLOAD_SECONDS.observe(time.monotonic() - started)
        return fetched

    async def _keep(self, url: str, attempts: int, data: bytes, image: CheckedImage) -> None:
        """Store a new image, or record the URL as one more source of a stored one; queue its message.

        Each source URL of an image gets one message (the indexer merges them into the image's one
        point, so the point lists every URL); the file is written once.
        """
        lock = self._image_locks.get(image.sha256)
        if lock is None:
            lock = asyncio.Lock()
            self._image_locks[image.sha256] = lock
        async with lock:
            body = message_for(image, url, datetime.now(UTC)).model_dump_json()
            if image.sha256 in self._stored:
                await self._state.record_duplicate(url, attempts, image.sha256, image.path, body)
                log.info(
                    "%s has the same bytes as an image already stored; adding it as a source",
                    url,
                    extra={"url": url, "sha256": image.sha256},
                )
            else:
                loop = asyncio.get_running_loop()
                await loop.run_in_executor(self._write_pool, write_atomic, self.settings.images_dir, image.path, data)
                await self._state.record_stored(url, attempts, image.sha256, image.path, body)
                self._stored.add(image.sha256)
            self._publisher.submit(url, body)
        self._set_status(url, "done", attempts)
        metrics.DOWNLOADED.inc()
        self._downloaded_since_summary += 1

    async def _record_retrying(self, url: str, attempts: int, failure: FetchFailed) -> None:
        await self._state.record_retrying(url, attempts, str(failure))
        self._set_status(url, "retrying", attempts)
        log.info(
            "%s failed (%s), try %d of %d; will retry",
            url,
            failure,
            attempts,
            self.settings.downloader_max_attempts,
            extra={"url": url, "reason": failure.reason},
        )

    async def _record_failed(self, url: str, attempts: int, reason: str, detail: str) -> None:
        await self._state.record_failed(url, attempts, f"{reason}: {detail}")
        self._set_status(url, "failed", attempts)
        metrics.FAILED.labels(reason).inc()
        log.warning("%s failed: %s: %s", url, reason, detail, extra={"url": url, "reason": reason})

    # Progress and shutdown.

    async def _summarise_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.downloader_summary_s)
            self._log_summary()

    def _log_summary(self, *, final: bool = False) -> None:
        rate = self._downloaded_since_summary / self.settings.downloader_summary_s
        self._downloaded_since_summary = 0
        counts = self.counts()
        log.info(
            "%s: %s, %d message(s) unconfirmed%s",
            "final" if final else "progress",
            _format_counts(counts),
            self._publisher.unconfirmed,
            "" if final else f", {rate:.1f} images/s",
            extra={**counts, "unconfirmed": self._publisher.unconfirmed},
        )

    async def _shut_down(self, helpers: list[asyncio.Task[Any]]) -> None:
        """Let in-flight work finish within the grace period, then abandon it cleanly.

        An abandoned download leaves nothing behind: files appear only by an atomic rename, a
        URL stays pending or retrying in the state and is fetched at the next start, and a
        message not yet confirmed is published at the next start.
        """
        grace = self.settings.downloader_shutdown_grace_s
        feeder = next(task for task in helpers if task.get_name() == "feeder")
        feeder.cancel()
        for task in self._tasks - self._in_flight:
            task.cancel()  # waiting for a slot or a retry: nothing to finish
        if self._in_flight:
            log.info("stopping: waiting up to %.0f s for %d download(s) in flight", grace, len(self._in_flight))
            await asyncio.wait(set(self._in_flight), timeout=grace)
        for task in set(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.wait(set(self._tasks))
        if self._publisher.unconfirmed and self._publisher.connected.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._publisher.wait_idle(), timeout=grace)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)


def _format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {count}" for status, count in counts.items())


def install_signal_handlers(downloader: Downloader) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, _request_stop, downloader, sig)


def _request_stop(downloader: Downloader, sig: signal.Signals) -> None:
    if not downloader.stop_requested.is_set():
        log.info("%s received: finishing in-flight work, then stopping", sig.name)
    downloader.stop_requested.set()
