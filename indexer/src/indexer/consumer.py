"""The consumer: messages in, batches embedded and written, acknowledgements only after the write.

Flow: the broker hands at most ``prefetch`` unacknowledged messages to this process; a gatherer
cuts them into batches (up to ``INDEXER_BATCH_SIZE``, or what arrived within
``INDEXER_BATCH_WAIT_MS``); up to ``INDEXER_CONCURRENCY`` batches are in flight at once, so the
next batch is being embedded while the last one is written. A batch is one ``/embed`` request
and one conditional write to Qdrant; only then are its messages acknowledged.

Faults:

* Embedding service or Qdrant unreachable: back off and retry for as long as it takes; the
  messages stay unacknowledged (they are returned to the queue if this process dies). The
  embedding service counts as down while it fails its probe (``/health`` and one short text).
* A batch whose ``/embed`` request fails (5xx, timeout, connection cut) while the service passes
  its probe is suspect: it is split in halves until the image at fault is alone, and that image is
  dead-lettered after ``INDEXER_EMBED_ATTEMPTS`` such failures (``embed_server_error``,
  ``embed_timeout`` or ``embed_crashed``); the rest is indexed. A service that dies while it holds the request counts
  the same once it is back (an image that crashes it). Failures while the service is down count
  for nothing: the batch waits.
* An answer from another model or other weights than the collection's (replicas behind one URL
  that disagree): the indexer stops (exit 3) and its messages go back to the queue; vectors of two
  models are never mixed in one collection.
* A message that can never be indexed (not JSON, another schema version, malformed, its image
  missing or not an image): published to the dead-letter exchange with the reason in a header,
  then acknowledged; the rest of its batch is indexed.
* Anything unexpected: the batch's messages are returned to the queue. The quorum queue's
  delivery limit dead-letters a message that keeps coming back, so a crash loop is bounded by
  RabbitMQ itself, not by counting here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import TypeVar

import aio_pika
import numpy as np
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from pydantic import ValidationError

from dyimages_common.embedding_api import (
    AsyncEmbeddingClient,
    EmbeddingBusy,
    EmbeddingConnectionLost,
    EmbeddingRequestError,
    EmbeddingTimeout,
    EmbeddingUnavailable,
    ModelIdentity,
)
from dyimages_common.qdrant import REINDEX_HINT
from dyimages_common.rabbit import REASON_HEADER, Topology, connect, declare_topology
from dyimages_common.retry import async_retrying
from indexer import metrics
from indexer.batch import (
    EMBED_CRASHED,
    EMBED_FAILED,
    EMBED_REFUSED,
    EMBED_SERVER_ERROR,
    EMBED_TIMEOUT,
    Image,
    Refusal,
    embed_error_reason,
    parse_batch,
)
from indexer.config import IndexerSettings
from indexer.store import ImageVector, Store, StoreConflict, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

DETAIL_HEADER = "x-dyimages-detail"
EXIT_OK = 0
EXIT_MODEL_MISMATCH = 3


class StartupError(RuntimeError):
    """The indexer cannot start with these settings (the message says which and why)."""


class ModelChanged(RuntimeError):
    """The embedding service now answers with another model or weights than the collection's: stop."""


def _failure_reason(error: EmbeddingUnavailable) -> str:
    """The dead-letter reason word for an image whose request keeps failing this way."""
    if isinstance(error, EmbeddingTimeout):
        return EMBED_TIMEOUT
    if isinstance(error, EmbeddingConnectionLost):
        return EMBED_CRASHED
    return EMBED_SERVER_ERROR


class Progress:
    """Counts for the periodic progress line."""

    def __init__(self) -> None:
        self.indexed = 0
        self.dead_lettered = 0
        self.started = time.monotonic()
        self._last = (self.started, 0, 0)

    def line(self) -> tuple[str, tuple[object, ...]] | None:
        """The next progress line, or None if nothing happened since the last one."""
        now = time.monotonic()
        then, indexed, dead = self._last
        if (indexed, dead) == (self.indexed, self.dead_lettered):
            return None
        self._last = (now, self.indexed, self.dead_lettered)
        rate = (self.indexed - indexed) / max(now - then, 1e-6)
        return "indexed %d (+%d, %.1f images/s), dead-lettered %d", (
            self.indexed,
            self.indexed - indexed,
            rate,
            self.dead_lettered,
        )

    def summary(self) -> tuple[str, tuple[object, ...]]:
        elapsed = time.monotonic() - self.started
        return "indexed %d, dead-lettered %d in %.1f s (%.1f images/s)", (
            self.indexed,
            self.dead_lettered,
            elapsed,
            self.indexed / max(elapsed, 1e-6),
        )


class Indexer:
    """One indexer process: ``await Indexer(settings).run()`` returns the exit status."""

    def __init__(self, settings: IndexerSettings, *, exit_when_idle: bool = False) -> None:
        self.settings = settings
        self.exit_when_idle = exit_when_idle
        self.topology = Topology.for_queue(settings.rabbitmq_queue)
        self.progress = Progress()
        self.model = ""
        self.dim = 0
        self.pretrained = ""
        self.identity = ModelIdentity("", "")
        self.exit_status = EXIT_OK
        self._stopping = asyncio.Event()
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self._unsettled: set[AbstractIncomingMessage] = set()
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.indexer_concurrency)
        self._embedder = AsyncEmbeddingClient(settings.embedding_service_url, timeout=settings.embedding_timeout_s)
        self._store = Store(settings)
        self._dead_letters: AbstractExchange | None = None
        self.queue_depth: int | None = None

    def stop(self) -> None:
        """Stop consuming and shut down (SIGTERM, SIGINT, or the queue drained)."""
        self._stopping.set()

    async def _retry(self, target: str, errors: tuple[type[Exception], ...], call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` until it succeeds, backing off while it raises one of ``errors``."""
        async for attempt in async_retrying(*errors, maximum=self.settings.indexer_retry_max_s):
            with attempt:
                if attempt.retry_state.attempt_number > 1:
                    metrics.RETRIES.labels(target).inc()
                return await call()
        raise AssertionError("unreachable: the retry policy never gives up")

    # -- start-up -------------------------------------------------------------------------------

    async def _start(self) -> bool:
        """Learn the model from the embedding service and make sure the collection is its own."""
        try:
            info = await self._retry("embedding", (EmbeddingUnavailable,), self._embedder.info)
        except ValidationError as exc:
            raise StartupError(
                f"EMBEDDING_SERVICE_URL={self.settings.embedding_service_url!r} answers /info, "
                "but not like the embedding service"
            ) from exc
        self.model, self.dim, self.pretrained = info.model, info.dim, info.pretrained
        self.identity = info.identity
        log.info("embedding service runs %s (%s, dim %d, %s)", self.model, self.pretrained, self.dim, info.device)
        created = await self._retry(
            "qdrant",
            (StoreUnavailable,),
            lambda: self._store.open(dim=self.dim, model=self.model, pretrained=self.pretrained),
        )
        if not created:
            log.info("using the existing collection %s", self.settings.qdrant_collection)
        return True

    async def _connect(self) -> AbstractRobustConnection:
        return await self._retry(
            "rabbitmq", (OSError, aio_pika.exceptions.AMQPConnectionError), lambda: connect(self.settings, "indexer")
        )

    # -- the run ------------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        connection: AbstractRobustConnection | None = None
        try:
            if not await self._unless_stopped(self._start()):
                return self.exit_status
            connection = await self._unless_stopped(self._connect())
            if connection is None:
                return self.exit_status
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            declared = await declare_topology(channel, self.topology.queue)
            self._dead_letters = declared.dead_letter_exchange
            consumer_tag = await declared.queue.consume(self._on_message)
            log.info(
                "consuming %s (batch %d, wait %d ms, %d in flight, prefetch %d)",
                self.topology.queue,
                self.settings.indexer_batch_size,
                self.settings.indexer_batch_wait_ms,
                self.settings.indexer_concurrency,
                self.settings.prefetch,
            )
            helpers = [
                self._watch(self._gather()),
                self._watch(self._watch_queue(connection)),
                self._watch(self._report_progress()),
            ]
            await self._stopping.wait()
            await self._shutdown(declared.queue, consumer_tag, helpers)
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
            if connection is not None:
                with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                    await connection.close()
            await self._embedder.aclose()
            await self._store.close()
        message, args = self.progress.summary()
        log.info(message, *args)
        return self.exit_status

    async def _unless_stopped(self, coroutine: Coroutine[None, None, T]) -> T | None:
        """Run a start-up step that may wait for a long time (a service down), but not past a SIGTERM."""
        task = asyncio.ensure_future(coroutine)
        stopping = asyncio.ensure_future(self._stopping.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    def _watch(self, coroutine: Coroutine[None, None, None]) -> asyncio.Task[None]:
        """A helper task whose unexpected end stops the process instead of leaving it stuck."""
        task = asyncio.ensure_future(coroutine)

        def done(task: asyncio.Task[None]) -> None:
            if not task.cancelled() and task.exception() is not None:
                log.error("internal task failed; stopping", exc_info=task.exception())
                self.exit_status = self.exit_status or 1
                self.stop()

        task.add_done_callback(done)
        return task

    async def _shutdown(self, queue: AbstractQueue, consumer_tag: str, helpers: list[asyncio.Task[None]]) -> None:
        """Stop consuming, let batches in flight finish (within the grace time), return the rest."""
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            await queue.cancel(consumer_tag)
        helpers[0].cancel()  # the gatherer: no new batches
        if self._inflight:
            grace = 0 if self.exit_status else self.settings.indexer_shutdown_grace_s
            log.info("finishing %d batch(es) in flight (up to %.0f s)", len(self._inflight), grace)
            _, unfinished = await asyncio.wait(set(self._inflight), timeout=grace)
            for task in unfinished:
                task.cancel()
            await asyncio.gather(*unfinished, return_exceptions=True)
        for task in helpers:
            task.cancel()
        await asyncio.gather(*helpers, return_exceptions=True)
        if self._unsettled:
            log.info("returning %d unprocessed message(s) to the queue", len(self._unsettled))
            for message in list(self._unsettled):
                await self._settle(message, requeue=True)

    # -- receiving and batching ---------------------------------------------------------------------

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._unsettled.add(message)
        self._buffer.put_nowait(message)

    async def _next_batch(self) -> list[AbstractIncomingMessage]:
        """The first message, then whatever else arrives until the batch is full or the wait is over."""
        batch = [await self._buffer.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.batch_wait_s
        while len(batch) < self.settings.indexer_batch_size:
            if not self._buffer.empty():
                batch.append(self._buffer.get_nowait())
                continue
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._buffer.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _gather(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._run_batch(batch))
            self._inflight.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    # -- one batch ----------------------------------------------------------------------------------

    async def _run_batch(self, batch: list[AbstractIncomingMessage]) -> None:
        try:
            await self._index(batch)
        except ModelChanged as exc:
            log.error("%s", exc)
            self.exit_status = EXIT_MODEL_MISMATCH
            self.stop()
        except Exception:
            # Unexpected (a bug, the broker connection lost mid-batch): give the messages back.
            # A message that keeps failing reaches the queue's delivery limit and is dead-lettered.
            log.exception("batch of %d failed; returning its messages to the queue", len(batch))
            for message in batch:
                if message in self._unsettled:
                    await self._settle(message, requeue=True)
            await asyncio.sleep(1.0)

    async def _index(self, batch: list[AbstractIncomingMessage]) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        images, refusals = parse_batch([message.body for message in batch])
        written: list[Image] = []
        if images:
            started = time.perf_counter()
            embedded = await self._embed(images)
            metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
            to_write: list[ImageVector] = []
            for image, vector, error in embedded:
                if vector is None:
                    reason = embed_error_reason(error or "")
                    refusals += [Refusal(index, reason, error or EMBED_FAILED) for index in image.indices]
                    continue
                if vector.shape != (self.dim,):
                    raise ModelChanged(
                        f"the embedding service now returns vectors of size {vector.shape[-1]}, but collection "
                        f"{self.settings.qdrant_collection!r} holds {self.model} vectors of size {self.dim}; "
                        "restart the indexer to check the model"
                    )
                to_write.append(ImageVector(image.sha256, vector, image.events))
                written.append(image)
            if to_write:
                started = time.perf_counter()
                await self._retry(
                    "qdrant", (StoreUnavailable, StoreConflict), lambda: self._store.write(to_write, model=self.model)
                )
                metrics.UPSERT_SECONDS.observe(time.perf_counter() - started)
        for refusal in refusals:
            await self._dead_letter(batch[refusal.index], refusal)
        indexed = [batch[index] for image in written for index in image.indices]
        for message in indexed:
            await self._settle(message)
        metrics.INDEXED.inc(len(indexed))
        self.progress.indexed += len(indexed)
        log.debug("batch: %d indexed, %d dead-lettered", len(indexed), len(refusals))

    async def _embed(self, images: Sequence[Image]) -> list[tuple[Image, np.ndarray | None, str | None]]:
        """One /embed request for the batch; what fails because of the batch is split until the image
        at fault is alone, what fails because the service is down waits for it.

        A request refused as a whole (4xx) is split at once. A request that fails otherwise is
        blamed (see :meth:`_blames_the_request`): a blamed batch is split, a blamed single image
        is tried ``INDEXER_EMBED_ATTEMPTS`` times and then failed with the reason, so one poison
        image cannot hold an indexer slot for good, nor hold back the rest of its batch.
        """
        paths = [image.path for image in images]
        failures = 0
        while True:
            try:
                result = await self._embedder.embed_image_paths(paths)
            except EmbeddingRequestError as exc:
                if len(images) == 1:
                    return [(images[0], None, f"{EMBED_REFUSED}: {exc}")]
                return await self._split(images)
            except EmbeddingUnavailable as exc:
                metrics.RETRIES.labels("embedding").inc()
                if not await self._blames_the_request(exc):
                    continue  # the service was down: that says nothing about this batch
                if len(images) > 1:
                    log.warning(
                        "a batch of %d failed while the embedding service works (%r); splitting it", len(images), exc
                    )
                    return await self._split(images)
                failures += 1
                if failures < self.settings.indexer_embed_attempts:
                    log.warning("an image failed %d time(s) while the embedding service works (%r)", failures, exc)
                    continue
                reason = _failure_reason(exc)
                detail = f"failed {failures} times while the embedding service answered other requests; last: {exc}"
                return [(images[0], None, f"{reason}: {detail}")]
            self._check_model(result.identity)
            return list(zip(images, result.vectors, result.errors, strict=True))

    async def _split(self, images: Sequence[Image]) -> list[tuple[Image, np.ndarray | None, str | None]]:
        middle = len(images) // 2
        return await self._embed(images[:middle]) + await self._embed(images[middle:])

    async def _blames_the_request(self, error: EmbeddingUnavailable) -> bool:
        """After a failed /embed request: wait until the service passes its probe again, and say
        whether the request itself is to blame.

        It is when the service passed its probe right away (it serves others, not this one), or when
        the connection broke while the service held the request and the service was down after it
        (the request may crash it). A service that refused the connection, answered 504 (the request
        waited too long and never reached the model: overloaded), or failed its probe after
        answering 5xx or timing out (down, starting, overloaded), blames nothing.
        """
        waited = await self._wait_for_embedding()
        if isinstance(error, EmbeddingBusy):
            await asyncio.sleep(min(1.0, self.settings.indexer_retry_max_s))  # do not add to the overload
            return False
        return not waited or isinstance(error, EmbeddingConnectionLost)

    async def _wait_for_embedding(self) -> bool:
        """Back off until the embedding service passes its probe; True if it had to wait."""
        waited = False
        async for attempt in async_retrying(EmbeddingUnavailable, maximum=self.settings.indexer_retry_max_s):
            with attempt:
                if not await self._embedder.usable():
                    waited = True
                    raise EmbeddingUnavailable(
                        f"the embedding service at {self.settings.embedding_service_url} does not pass its probe "
                        "(GET /health and one short text)"
                    )
        return waited

    def _check_model(self, answered: ModelIdentity) -> None:
        """Refuse vectors of another model or other weights than the collection's, even of the same size."""
        if answered != self.identity:
            raise ModelChanged(
                f"the embedding service answered with vectors of {answered}, but collection "
                f"{self.settings.qdrant_collection!r} holds vectors of {self.identity}: refusing to mix them, "
                "the batch goes back to the queue. Run every replica behind EMBEDDING_SERVICE_URL with the "
                f"collection's model and weights, or move to the new model. {REINDEX_HINT}"
            )

    async def _dead_letter(self, message: AbstractIncomingMessage, refusal: Refusal) -> None:
        """Publish the original body to the dead-letter exchange (confirmed), then acknowledge it."""
        if self._dead_letters is None:
            raise RuntimeError("dead-letter exchange not declared")
        headers = dict(message.headers or {})
        headers[REASON_HEADER] = refusal.reason
        headers[DETAIL_HEADER] = refusal.detail[:2000]
        await self._dead_letters.publish(
            aio_pika.Message(
                message.body,
                headers=headers,
                content_type=message.content_type,
                message_id=message.message_id,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.topology.dead_letter_queue,
        )
        await self._settle(message)
        metrics.DEAD_LETTERED.labels(refusal.reason).inc()
        self.progress.dead_lettered += 1
        log.warning(
            "dead-lettered a message (%s): %s",
            refusal.reason,
            refusal.detail,
            extra={"reason": refusal.reason, "message_id": message.message_id},
        )

    async def _settle(self, message: AbstractIncomingMessage, *, requeue: bool | None = None) -> None:
        """Acknowledge (``requeue=None``) or give back a message; never raise for a lost channel."""
        self._unsettled.discard(message)
        try:
            if requeue is None:
                await message.ack()
            else:
                await message.nack(requeue=requeue)
        except (*CONNECTION_EXCEPTIONS, aio_pika.exceptions.MessageProcessError) as exc:
            # The channel closed under us: the broker has already returned the message to the
            # queue, and writing it again is harmless (same point id).
            log.warning("could not settle a message (%r); the broker will deliver it again", exc)

    # -- watching the queue ------------------------------------------------------------------------

    async def _queue_depth(
        self, connection: AbstractRobustConnection, channel: AbstractChannel | None
    ) -> tuple[int | None, AbstractChannel | None]:
        try:
            if channel is None or channel.is_closed:
                channel = await connection.channel(publisher_confirms=False)
            queue = await channel.declare_queue(self.topology.queue, passive=True, robust=False)
            return queue.declaration_result.message_count or 0, channel
        except CONNECTION_EXCEPTIONS as exc:
            log.debug("queue depth unknown: %r", exc)
            return None, None

    async def _watch_queue(self, connection: AbstractRobustConnection) -> None:
        """Keep the queue-depth gauge fresh; with --exit-when-idle, stop once all is drained."""
        interval = 0.25 if self.exit_when_idle else min(5.0, self.settings.indexer_progress_interval_s)
        channel: AbstractChannel | None = None
        idle_since: float | None = None
        while True:
            depth, channel = await self._queue_depth(connection, channel)
            if depth is not None:
                self.queue_depth = depth
                metrics.QUEUE_DEPTH.set(depth)
            if self.exit_when_idle:
                idle = depth == 0 and not self._unsettled and not self._inflight
                now = time.monotonic()
                idle_since = (idle_since or now) if idle else None
                if idle_since is not None and now - idle_since >= self.settings.indexer_idle_exit_s:
                    log.info("queue %s drained; exiting", self.topology.queue)
                    self.stop()
                    return
            await asyncio.sleep(interval)

    async def _report_progress(self) -> None:
        while True:
            await asyncio.sleep(self.settings.indexer_progress_interval_s)
            line = self.progress.line()
            if line is not None:
                message, args = line
                log.info(message + ", queue depth %s", *args, self.queue_depth)
