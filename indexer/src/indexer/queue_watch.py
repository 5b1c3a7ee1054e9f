"""Watching the work queue: keep the queue-depth gauge fresh, and with ``--exit-when-idle`` say when
everything is drained (the queue empty and nothing held here for ``INDEXER_IDLE_EXIT_S``)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from aio_pika.abc import AbstractChannel, AbstractRobustConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS

from indexer import metrics

log = logging.getLogger(__name__)


class QueueWatcher:
    """The last known depth of ``queue``; ``run`` polls it until cancelled or drained."""

    def __init__(self, queue: str, *, interval_s: float) -> None:
        self.queue = queue
        self.interval_s = interval_s
        self.depth: int | None = None

    async def _poll(
        self, connection: AbstractRobustConnection, channel: AbstractChannel | None
    ) -> tuple[int | None, AbstractChannel | None]:
        try:
            if channel is None or channel.is_closed:
                channel = await connection.channel(publisher_confirms=False)
            queue = await channel.declare_queue(self.queue, passive=True, robust=False)
            return queue.declaration_result.message_count or 0, channel
        except CONNECTION_EXCEPTIONS as exc:
            log.debug("queue depth unknown: %r", exc)
            return None, None

    async def run(
        self,
        connection: AbstractRobustConnection,
        *,
        holding: Callable[[], bool] | None = None,
        idle_exit_s: float = 0.0,
        on_drained: Callable[[], None] | None = None,
    ) -> None:
        """Keep the gauge fresh; with ``on_drained``, call it and return once the queue is empty and
        ``holding()`` (messages or batches held by this process) has been false for ``idle_exit_s``."""
        channel: AbstractChannel | None = None
        idle_since: float | None = None
        while True:
            depth, channel = await self._poll(connection, channel)
            if depth is not None:
                self.depth = depth
                metrics.QUEUE_DEPTH.set(depth)
            if on_drained is not None:
                idle = depth == 0 and not (holding is not None and holding())
                now = time.monotonic()
                idle_since = (idle_since or now) if idle else None
                if idle_since is not None and now - idle_since >= idle_exit_s:
                    log.info("queue %s drained; exiting", self.queue)
                    on_drained()
                    return
            await asyncio.sleep(self.interval_s)
