"""The consumer: one indexer process's lifecycle, and batches in flight.

Here: start-up (:mod:`indexer.startup`), consuming into the :mod:`indexer.inbox`, up to
``INDEXER_CONCURRENCY`` batches at once (each one :meth:`indexer.indexing.BatchIndexer.index`), the
helper tasks (queue watcher, progress line) under the shared supervisor, and the shutdown. What one
batch does is :mod:`indexer.indexing`; dead letters are :mod:`indexer.dead_letters`.

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
  missing or not an image): published to the dead-letter exchange with its
  :class:`~dyimages_common.reasons.Reason` in a header, then acknowledged; the rest of its batch
  is indexed.
* Anything unexpected: the batch's messages are returned to the queue. The quorum queue's
  delivery limit dead-letters a message that keeps coming back, so a crash loop is bounded by
  RabbitMQ itself, not by counting here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from dyimages_common.embeddings.client import ModelIdentity, ModelInfo
from dyimages_common.messaging.rabbit import Topology, declare_control_queue, declare_topology
from dyimages_common.process import exit_codes
from dyimages_common.process.supervisor import Supervisor, every, finish_within
from indexer.dead_letters import DeadLetters
from indexer.embedder import BatchEmbedder, ModelChanged
from indexer.inbox import Inbox
from indexer.indexing import BatchIndexer
from indexer.library_refusals import LibraryRefusals
from indexer.progress import Progress
from indexer.queue_watch import QueueWatcher
from indexer.settings import IndexerSettings
from indexer.startup import StartupError, connect_broker, learn_model, open_collection
from indexer.store import Store

log = logging.getLogger(__name__)

__all__ = ["EXIT_MODEL_MISMATCH", "EXIT_OK", "Indexer", "StartupError"]

EXIT_OK = exit_codes.OK
EXIT_MODEL_MISMATCH = exit_codes.MODEL_MISMATCH


class Indexer:
    """One indexer process: ``await Indexer(settings).run()`` returns the exit status."""

    def __init__(self, settings: IndexerSettings, *, exit_when_idle: bool = False) -> None:
        self.settings = settings
        self.exit_when_idle = exit_when_idle
        self.topology = Topology.for_queue(settings.rabbitmq_queue)
        self.progress = Progress()
        self.exit_status = EXIT_OK
        self.supervisor = Supervisor(on_helper_failed=self._helper_failed)
        self._inbox = Inbox(batch_size=settings.indexer_batch_size, batch_wait_s=settings.batch_wait_s)
        self._inflight: set[asyncio.Task[None]] = set()
        self._slots = asyncio.Semaphore(settings.indexer_concurrency)
        self._embedder = BatchEmbedder(settings)
        self._store = Store(settings)
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

    async def _start(self) -> ModelInfo:
        """Learn the model from the embedding service and make sure the collection is its own."""
        model = await learn_model(self.settings, self._embedder.client)
        self._embedder.identity = model.identity
        await open_collection(self.settings, self._store, model)
        return model

    # -- the run ------------------------------------------------------------------------------------

    async def run(self) -> int:
        self.supervisor.install_signal_handlers()
        connection: AbstractRobustConnection | None = None
        try:
            model = await self.supervisor.unless_stopped(self._start())
            if model is None:
                return self.exit_status
            connection = await self.supervisor.unless_stopped(connect_broker(self.settings))
            if connection is None:
                return self.exit_status
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=self.settings.prefetch)
            declared = await declare_topology(channel, self.topology.queue)
            control = await declare_control_queue(channel, self.topology.queue)
            batches = BatchIndexer(
                self.settings,
                model=model,
                embedder=self._embedder,
                store=self._store,
                inbox=self._inbox,
                dead_letters=DeadLetters(declared.dead_letter_exchange, self.topology, self._inbox),
                library_refusals=LibraryRefusals(channel, control.name, self._inbox),
                progress=self.progress,
            )
            consumer_tag = await declared.queue.consume(self._inbox.on_message)
            log.info(
                "consuming %s (batch %d, wait %d ms, %d in flight, prefetch %d)",
                self.topology.queue,
                self.settings.indexer_batch_size,
                self.settings.indexer_batch_wait_ms,
                self.settings.indexer_concurrency,
                self.settings.prefetch,
            )
            self.supervisor.start("gatherer", self._gather(batches))
            self.supervisor.start("queue-watcher", self._watch_queue(connection))
            self.supervisor.start("progress", every(self.settings.indexer_progress_interval_s, self._log_progress))
            self.supervisor.start("settler", self._store.settle_when_idle())
            await self.supervisor.stop_requested.wait()
            await self._shutdown(declared.queue, consumer_tag)
        finally:
            self.supervisor.remove_signal_handlers()
            if connection is not None:
                with contextlib.suppress(*CONNECTION_EXCEPTIONS):
                    await connection.close()
            await self._embedder.client.aclose()
            await self._store.close(settle=self.exit_when_idle and not self.exit_status)
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

    # -- batches in flight ------------------------------------------------------------------------

    async def _gather(self, batches: BatchIndexer) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._inbox.next_batch()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._run_batch(batches, batch))
            self._inflight.add(task)
            task.add_done_callback(self._batch_done)

    def _batch_done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slots.release()

    async def _run_batch(self, batches: BatchIndexer, batch: list[AbstractIncomingMessage]) -> None:
        try:
            await batches.index(batch)
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
