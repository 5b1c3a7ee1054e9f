"""Messages in: the broker's deliveries buffered, cut into batches, and settled exactly once.

The broker hands at most ``prefetch`` unacknowledged messages to this process; they wait here until
a batch takes them (up to ``INDEXER_BATCH_SIZE``, or what arrived within ``INDEXER_BATCH_WAIT_MS``).
Every message stays "unsettled" until it is acknowledged or given back, so a shutdown knows exactly
which ones to return to the queue.
"""

from __future__ import annotations

import asyncio
import logging

import aio_pika
from aio_pika.abc import AbstractIncomingMessage
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

log = logging.getLogger(__name__)


class Inbox:
    """The messages this process holds: buffered for a batch, or in a batch, until settled."""

    def __init__(self, *, batch_size: int, batch_wait_s: float) -> None:
        self._batch_size = batch_size
        self._batch_wait_s = batch_wait_s
        self._buffer: asyncio.Queue[AbstractIncomingMessage] = asyncio.Queue()
        self.unsettled: set[AbstractIncomingMessage] = set()

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        """The consumer callback: keep the message until a batch takes it."""
        self.unsettled.add(message)
        self._buffer.put_nowait(message)

    async def next_batch(self) -> list[AbstractIncomingMessage]:
        """The first message, then whatever else arrives until the batch is full or the wait is over."""
        batch = [await self._buffer.get()]
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._batch_wait_s
        while len(batch) < self._batch_size:
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

    async def settle(self, message: AbstractIncomingMessage, *, requeue: bool | None = None) -> None:
        """Acknowledge (``requeue=None``) or give back a message; never raise for a lost channel."""
        self.unsettled.discard(message)
        try:
            if requeue is None:
                await message.ack()
            else:
                await message.nack(requeue=requeue)
        except (*CONNECTION_EXCEPTIONS, aio_pika.exceptions.MessageProcessError) as exc:
            # The channel closed under us: the broker has already returned the message to the
            # queue, and writing it again is harmless (same point id).
            log.warning("could not settle a message (%r); the broker will deliver it again", exc)

    async def return_unsettled(self) -> None:
        """At the stop: every message not yet settled goes back to the queue."""
        if self.unsettled:
            log.info("returning %d unprocessed message(s) to the queue", len(self.unsettled))
            for message in list(self.unsettled):
                await self.settle(message, requeue=True)
