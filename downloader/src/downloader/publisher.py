"""Publishing one ImageDownloaded message per stored image and source URL, with publisher confirms.

Messages come from the URL state (the row is durable before a message is submitted here), so
RabbitMQ being down loses nothing: downloads go on, messages wait in memory and in the state,
and the publisher connects (retrying with backoff for as long as it takes), then sends them.
``on_confirmed`` is called only with images the broker acknowledged; the downloader marks them
``published`` then. A confirm lost in a crash means the message is sent again at the next start;
the indexer is idempotent, so that duplicates work, never data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable

import aio_pika
import aiormq
from aio_pika.abc import AbstractChannel, AbstractRobustConnection

from downloader.metrics import PUBLISHED
from dyimages_common.backoff import async_retrying, backoff_s
from dyimages_common.messaging.rabbit import connect, declare_topology, persistent_message
from dyimages_common.settings import RabbitSettings

log = logging.getLogger(__name__)

# What a lost or refusing broker raises while connecting or publishing.
BROKER_ERRORS: tuple[type[BaseException], ...] = (
    aiormq.exceptions.AMQPError,
    aio_pika.exceptions.ChannelInvalidStateError,
    ConnectionError,
    OSError,
    TimeoutError,
)
BATCH = 256
PUBLISH_TIMEOUT_S = 30.0


class Publisher:
    def __init__(
        self,
        settings: RabbitSettings,
        on_confirmed: Callable[[list[str]], Awaitable[None]],
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 10.0,
    ) -> None:
        self._settings = settings
        self._on_confirmed = on_confirmed
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._pending: deque[tuple[str, str]] = deque()  # (URL, message body)
        self._in_flight = 0
        self._has_work = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self.connected = asyncio.Event()

    @property
    def unconfirmed(self) -> int:
        return len(self._pending) + self._in_flight

    def submit(self, url: str, body: str) -> None:
        """Publish ``body``, the message for ``url``; ``on_confirmed`` gets the URL once the broker confirmed."""
        self._pending.append((url, body))
        self._idle.clear()
        self._has_work.set()

    async def wait_idle(self) -> None:
        """Until every submitted message is confirmed."""
        await self._idle.wait()

    async def run(self) -> None:
        """Connect (waiting for the broker as long as it takes), then publish until cancelled."""
        connection = await self._connect()
        try:
            channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
            await declare_topology(channel, self._settings.rabbitmq_queue)
            self.connected.set()
            log.info(
                "publishing to queue %s on %s:%d",
                self._settings.rabbitmq_queue,
                self._settings.rabbitmq_host,
                self._settings.rabbitmq_port,
            )
            await self._publish_forever(channel)
        finally:
            self.connected.clear()
            await connection.close()

    async def _connect(self) -> AbstractRobustConnection:
        warned = False
        async for attempt in async_retrying(*BROKER_ERRORS, initial=self._retry_initial_s, maximum=self._retry_max_s):
            with attempt:
                try:
                    return await connect(self._settings, "dyimages-downloader")
                except BROKER_ERRORS as exc:
                    if not warned:
                        log.warning(
                            "RabbitMQ at %s:%d is not reachable (%s); downloads go on, messages wait, retrying",
                            self._settings.rabbitmq_host,
                            self._settings.rabbitmq_port,
                            exc,
                        )
                        warned = True
                    raise
        raise AssertionError("unreachable: the retry loop retries forever")

    async def _publish_forever(self, channel: AbstractChannel) -> None:
        failures = 0
        while True:
            if not self._pending:
                if self._in_flight == 0:
                    self._idle.set()
                self._has_work.clear()
                await self._has_work.wait()
            batch = [self._pending.popleft() for _ in range(min(BATCH, len(self._pending)))]
            self._in_flight += len(batch)
            try:
                outcomes = await asyncio.gather(
                    *(self._publish_one(channel, body) for _, body in batch), return_exceptions=True
                )
                for outcome in outcomes:
                    if isinstance(outcome, BaseException) and not isinstance(outcome, _Unconfirmed):
                        raise outcome
                confirmed = [url for (url, _), outcome in zip(batch, outcomes, strict=True) if outcome is None]
                refused = [item for item, outcome in zip(batch, outcomes, strict=True) if outcome is not None]
                if confirmed:
                    await self._on_confirmed(confirmed)
                    PUBLISHED.inc(len(confirmed))
                # Unconfirmed messages go back to the front, in order, for the next try.
                self._pending.extendleft(reversed(refused))
            finally:
                self._in_flight -= len(batch)
            if refused:
                failures += 1
                error = next(outcome for outcome in outcomes if outcome is not None)
                delay = backoff_s(failures, initial=self._retry_initial_s, maximum=self._retry_max_s)
                log.warning(
                    "%d message(s) not confirmed (%r); the broker may be away, trying again in %.1f s",
                    len(refused),
                    error,
                    delay,
                )
                await asyncio.sleep(delay)
                # Unroutable means the queue is gone (deleted by hand?): declare it again.
                with contextlib.suppress(*BROKER_ERRORS):
                    await declare_topology(channel, self._settings.rabbitmq_queue)
            else:
                failures = 0

    async def _publish_one(self, channel: AbstractChannel, body: str) -> None:
        message = persistent_message(body.encode())
        try:
            await channel.default_exchange.publish(
                message, routing_key=self._settings.rabbitmq_queue, timeout=PUBLISH_TIMEOUT_S
            )
        except BROKER_ERRORS as exc:
            raise _Unconfirmed(exc) from exc


class _Unconfirmed(Exception):
    """The broker did not confirm one message (lost connection, nack, timeout)."""
