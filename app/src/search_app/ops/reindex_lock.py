"""One `dyimages reindex` at a time, whatever engine holds the index: a lock held on RabbitMQ.

Two reindexes at once would each make a collection and point the building name at its own, leaving one
orphaned (and both republishing every image). The lock is an *exclusive* queue,
``<RABBITMQ_QUEUE>.reindex-lock``, declared on a connection of its own that lives as long as the command:
RabbitMQ lets only that connection declare it, and deletes it when the connection closes, so a reindex
that crashes or is killed frees the lock at once (no stale lock to clear by hand). It is neutral to the
store: the same lock for the embedded folder and the Qdrant server, taken before the store is opened.
Every reindex needs RabbitMQ anyway (its messages go there). The connection runs on a thread of its own,
so the broker's heartbeats go on while the command waits for the indexer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import aio_pika
import aiormq

from dyimages_common.messaging.rabbit import amqp_url
from dyimages_common.settings import RabbitSettings

CONNECT_TIMEOUT_S = 10.0


class ReindexRunning(RuntimeError):
    """Another `dyimages reindex` holds the lock: this one changed nothing."""


class LockUnavailable(RuntimeError):
    """RabbitMQ did not answer, so the lock could not be taken: nothing was changed."""


def lock_queue(settings: RabbitSettings) -> str:
    return f"{settings.rabbitmq_queue}.reindex-lock"


class _Holder(threading.Thread):
    """The lock's connection, on its own event loop."""

    def __init__(self, settings: RabbitSettings) -> None:
        super().__init__(name="reindex-lock", daemon=True)
        self._settings = settings
        self._taken = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._release: asyncio.Event | None = None

    def run(self) -> None:
        asyncio.run(self._hold())

    async def _hold(self) -> None:
        self._loop, self._release = asyncio.get_running_loop(), asyncio.Event()
        try:
            connection = await aio_pika.connect(
                amqp_url(self._settings),
                client_properties={"connection_name": "dyimages-reindex-lock"},
                timeout=CONNECT_TIMEOUT_S,
            )
        except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
            where = f"{self._settings.rabbitmq_host}:{self._settings.rabbitmq_port}"
            self._error = LockUnavailable(f"RabbitMQ at {where} is not answering: {exc!r}")
            self._taken.set()
            return
        async with connection:
            channel = await connection.channel()
            name = lock_queue(self._settings)
            try:
                await channel.declare_queue(name, exclusive=True, auto_delete=True)
            except aiormq.exceptions.ChannelLockedResource:
                self._error = ReindexRunning(
                    f"another `dyimages reindex` is running (it holds {name} on RabbitMQ): nothing was changed; "
                    "run this again when it has finished"
                )
            except (TimeoutError, OSError, aiormq.exceptions.AMQPError) as exc:
                self._error = LockUnavailable(f"RabbitMQ refused the reindex lock {name}: {exc!r}")
            self._taken.set()
            if self._error is None:
                await self._release.wait()

    def acquire(self) -> None:
        self.start()
        self._taken.wait()
        if self._error is not None:
            self.join()
            raise self._error

    def release(self) -> None:
        if self._loop is not None and self._release is not None and self.is_alive():
            self._loop.call_soon_threadsafe(self._release.set)
        self.join(timeout=CONNECT_TIMEOUT_S)


@contextmanager
def reindex_lock(settings: RabbitSettings) -> Iterator[None]:
    """Hold the reindex lock for the block. Raises ReindexRunning when another reindex holds it,
    LockUnavailable when RabbitMQ does not answer."""
    holder = _Holder(settings)
    holder.acquire()
    try:
        yield
    finally:
        holder.release()
