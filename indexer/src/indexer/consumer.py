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
  that disagree): the indexer stops (exit 4, ``exit_codes.MODEL_MISMATCH``) and its messages go
  back to the queue; vectors of two models are never mixed in one collection.
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
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from pydantic import ValidationError

from dyimages_common import exit_codes
from dyimages_common.embedding_api import EmbeddingUnavailable, ModelIdentity
from dyimages_common.rabbit import Topology, connect, declare_topology
from dyimages_common.retry import async_retrying
from dyimages_common.supervisor import Supervisor, every, finish_within
from indexer import metrics
from indexer.batch import EMBED_FAILED, Image, Refusal, embed_error_reason, parse_batch
from indexer.dead_letters import DETAIL_HEADER, dead_letter
from indexer.embedder import BatchEmbedder, ModelChanged
from indexer.inbox import Inbox
from indexer.progress import Progress
from indexer.queue_watch import QueueWatcher
from indexer.settings import IndexerSettings
from indexer.store import ImageVector, Store, StoreConflict, StoreUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")

__all__ = ["DETAIL_HEADER", "EXIT_MODEL_MISMATCH", "EXIT_OK", "Indexer", "StartupError"]

EXIT_OK = exit_codes.OK
EXIT_MODEL_MISMATCH = exit_codes.MODEL_MISMATCH


class StartupError(RuntimeError):
    """The indexer cannot start with these settings (the message says which and why)."""


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
        self.exit_status = EXIT_OK
        self.supervisor = Supervisor(on_helper_failed=self._helper_failed)
        self._inbox = Inbox(batch_size=settings.indexer_batch_size, batch_wait_s=settings.batch_wait_s)
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.indexer_concurrency)
        self._embedder = BatchEmbedder(settings)
        self._store = Store(settings)
        self._dead_letters: aio_pika.abc.AbstractExchange | None = None
        interval = 0.25 if exit_when_idle else min(5.0, settings.indexer_progress_interval_s)
        self._queue_watcher = QueueWatcher(self.topology.queue, interval_s=interval)

    @property
    def identity(self) -> ModelIdentity:
        """The collection's model and weights, learned at the start."""
        return self._embedder.identity

    @property
    def queue_depth(self) -> int | None:
        return self._queue_watcher.depth

    def stop(self) -> None:
        """Stop consuming and shut down (SIGTERM, SIGINT, or the queue drained)."""
        self.supervisor.stop()

    def _helper_failed(self, task: asyncio.Task[None], error: BaseException) -> None:
        """A helper task's unexpected end stops the process instead of leaving it stuck."""
        log.error("internal task failed; stopping", exc_info=error)
        self.exit_status = self.exit_status or 1
        self.stop()

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
            info = await self._retry("embedding", (EmbeddingUnavailable,), self._embedder.client.info)
        except ValidationError as exc:
            raise StartupError(
                f"EMBEDDING_SERVICE_URL={self.settings.embedding_service_url!r} answers /info, "
                "but not like the embedding service"
            ) from exc
        self.model, self.dim, self.pretrained = info.model, info.dim, info.pretrained
        self._embedder.identity = info.identity
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
        self.supervisor.install_signal_handlers()
        connection: AbstractRobustConnection | None = None
        try:
            if not await self.supervisor.unless_stopped(self._start()):
                return self.exit_status
            connection = await self.supervisor.unless_stopped(self._connect())
            if connection is None:
                return self.exit_status
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            declared = await declare_topology(channel, self.topology.queue)
            self._dead_letters = declared.dead_letter_exchange
            consumer_tag = await declared.queue.consume(self._inbox.on_message)
            log.info(
                "consuming %s (batch %d, wait %d ms, %d in flight, prefetch %d)",
                self.topology.queue,
                self.settings.indexer_batch_size,
                self.settings.indexer_batch_wait_ms,
                self.settings.indexer_concurrency,
                self.settings.prefetch,
            )
            self.supervisor.start("gatherer", self._gather())
            self.supervisor.start("queue-watcher", self._watch_queue(connection))
            self.supervisor.start("progress", every(self.settings.indexer_progress_interval_s, self._log_progress))
            await self.supervisor.stop_requested.wait()
            await self._shutdown(declared.queue, consumer_tag)
        finally:
            self.supervisor.remove_signal_handlers()
            if connection is not None:
                with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                    await connection.close()
            await self._embedder.client.aclose()
            await self._store.close()
        message, args = self.progress.summary()
        log.info(message, *args)
        return self.exit_status

    async def _shutdown(self, queue: AbstractQueue, consumer_tag: str) -> None:
        """Stop consuming, let batches in flight finish (within the grace time), return the rest."""
        with contextlib.suppress(*CONNECTION_EXCEPTIONS):
            await queue.cancel(consumer_tag)
        self.supervisor.helper("gatherer").cancel()  # no new batches
        if self._inflight:
            grace = 0 if self.exit_status else self.settings.indexer_shutdown_grace_s
            log.info("finishing %d batch(es) in flight (up to %.0f s)", len(self._inflight), grace)
            await finish_within(self._inflight, grace)
        await self.supervisor.cancel_helpers()
        await self._inbox.return_unsettled()

    def _watch_queue(self, connection: AbstractRobustConnection) -> Awaitable[None]:
        if not self.exit_when_idle:
            return self._queue_watcher.run(connection)
        return self._queue_watcher.run(
            connection,
            holding=lambda: bool(self._inbox.unsettled or self._inflight),
            idle_exit_s=self.settings.indexer_idle_exit_s,
            on_drained=self.stop,
        )

    def _log_progress(self) -> None:
        line = self.progress.line()
        if line is not None:
            message, args = line
            log.info(message + ", queue depth %s", *args, self.queue_depth)

    # -- batches ------------------------------------------------------------------------------------

    async def _gather(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._inbox.next_batch()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._run_batch(batch))
            self._inflight.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

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
                if message in self._inbox.unsettled:
                    await self._inbox.settle(message, requeue=True)
            await asyncio.sleep(1.0)

    async def _index(self, batch: list[AbstractIncomingMessage]) -> None:
        metrics.BATCH_SIZE.observe(len(batch))
        images, refusals = parse_batch([message.body for message in batch])
        written: list[Image] = []
        if images:
            started = time.perf_counter()
            embedded = await self._embedder.embed(images)
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
            await self._inbox.settle(message)
        metrics.INDEXED.inc(len(indexed))
        self.progress.indexed += len(indexed)
        log.debug("batch: %d indexed, %d dead-lettered", len(indexed), len(refusals))

    async def _dead_letter(self, message: AbstractIncomingMessage, refusal: Refusal) -> None:
        if self._dead_letters is None:
            raise RuntimeError("dead-letter exchange not declared")
        await dead_letter(self._dead_letters, self.topology, self._inbox, message, refusal)
        self.progress.dead_lettered += 1
