"""Consuming the control queue: retry requests (``dyimages retry``, the status page's button) and the
indexer's refusals of library photos.

A retry request only names which failed URLs to fetch again (:class:`RetryRequest`); the downloader,
the one writer of the URL state, resets them to ``pending`` and queues them like new URLs. A
:class:`~dyimages_common.library.refusal.LibraryRefusal` names a library photo the embedding service
could not decode; the library's state records its reason per path. A message is acknowledged only
after its change is durable, so a downloader stopped halfway gets it again. A body that is neither
is dead-lettered (``<queue>.dead``, visible in ``dyimages failures``) with a log line, never
retried; one whose handling keeps failing is returned to the queue and dead-lettered by RabbitMQ
after its delivery limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from aio_pika.abc import AbstractIncomingMessage, AbstractRobustConnection
from pydantic import ValidationError

from downloader.publisher import BROKER_ERRORS
from dyimages_common.backoff import async_retrying
from dyimages_common.library.refusal import CONTROL_MESSAGE, LibraryRefusal
from dyimages_common.messaging.rabbit import connect, declare_control_queue
from dyimages_common.settings import RabbitSettings
from dyimages_common.urls.refetch import RetryRequest

log = logging.getLogger(__name__)

# aiormq raises a bare RuntimeError for a channel asked of a connection that just closed.
SETUP_ERRORS: tuple[type[BaseException], ...] = (*BROKER_ERRORS, RuntimeError)


class ControlHandler(Protocol):
    """What the control queue's messages ask of the downloader; each returns what it changed."""

    async def retry_failed(self, request: RetryRequest) -> list[str]: ...

    async def refuse_library_files(self, refusal: LibraryRefusal) -> list[str]: ...


class ControlQueueConsumer:
    """Consume ``<RABBITMQ_QUEUE>.control``: each valid retry request to the handler's ``retry_failed``,
    each library refusal to its ``refuse_library_files`` (one message at a time)."""

    def __init__(self, settings: RabbitSettings, handler: ControlHandler, *, retry_max_s: float = 10.0) -> None:
        self._settings = settings
        self._handler = handler
        self._retry_max_s = retry_max_s

    async def run(self) -> None:
        """Connect (waiting for the broker as long as it takes; the publisher already says it is away),
        then consume until cancelled. The robust connection consumes again after a reconnect."""
        connection = await self._connect()
        try:
            # The broker may go away while the queue is being set up: set it up again on a new channel.
            async for attempt in async_retrying(*SETUP_ERRORS, maximum=self._retry_max_s):
                with attempt:
                    await self._consume(connection)
            await asyncio.Event().wait()
        finally:
            await connection.close()

    async def _consume(self, connection: AbstractRobustConnection) -> None:
        channel = await connection.channel()
        try:
            await channel.set_qos(prefetch_count=1)
            queue = await declare_control_queue(channel, self._settings.rabbitmq_queue)
            await queue.consume(self._on_message)
        except BaseException:
            with contextlib.suppress(*SETUP_ERRORS):
                await channel.close()
            raise
        log.info("taking retry requests from %s", queue.name)

    async def _connect(self) -> AbstractRobustConnection:
        async for attempt in async_retrying(*BROKER_ERRORS, maximum=self._retry_max_s):
            with attempt:
                return await connect(self._settings, "dyimages-downloader-control")
        raise AssertionError("unreachable: the retry loop retries forever")

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        try:
            request = CONTROL_MESSAGE.validate_json(message.body)
        except ValidationError as exc:
            log.warning(
                "control queue: a message that is neither a retry request nor a library refusal was dead-lettered: %s",
                exc.errors()[0]["msg"] if exc.errors() else exc,
            )
            await message.reject(requeue=False)
            return
        if isinstance(request, LibraryRefusal):
            async with message.process(requeue=True):  # acknowledged only once the paths are recorded
                refused = await self._handler.refuse_library_files(request)
            log.warning(
                "the embedding service refused library photo %s (%s): %s; %d path(s) recorded as refused",
                request.sha256[:12],
                request.reason.value,
                request.detail,
                len(refused),
                extra={"sha256": request.sha256, "reason": request.reason.value, "paths": refused[:20]},
            )
            return
        async with message.process(requeue=True):  # acknowledged only once the reset is durable
            urls = await self._handler.retry_failed(request)
        log.info(
            "retry request %s from %s (%s): %d failed URL(s) back to pending",
            request.request_id,
            request.requested_by,
            request.describe(),
            len(urls),
            extra={"request_id": request.request_id, "retried": len(urls)},
        )
