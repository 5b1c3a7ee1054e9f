"""Library photos the embedding service could not embed: their reason goes back to the library's state.

The downloader alone writes that state, so the refusal (:class:`~dyimages_common.library.refusal.LibraryRefusal`)
goes to its control queue, confirmed by the broker, and only then is the message acknowledged: a crash
in between delivers the message again and sends the refusal again, which the downloader applies once.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractChannel, AbstractIncomingMessage

from dyimages_common.library.refusal import LibraryRefusal
from dyimages_common.messaging.rabbit import persistent_message
from indexer import metrics
from indexer.inbox import Inbox

log = logging.getLogger(__name__)


class LibraryRefusals:
    """The downloader's control queue (declared by the caller) on a channel with publisher confirms."""

    def __init__(self, channel: AbstractChannel, control_queue: str, inbox: Inbox) -> None:
        self._channel = channel
        self._control_queue = control_queue
        self._inbox = inbox

    async def send(self, messages: list[AbstractIncomingMessage], refusal: LibraryRefusal) -> None:
        """Publish ``refusal`` (confirmed), then acknowledge the ``messages`` it answers."""
        body = refusal.model_dump_json().encode()
        await self._channel.default_exchange.publish(persistent_message(body), routing_key=self._control_queue)
        for message in messages:
            await self._inbox.settle(message)
        metrics.LIBRARY_REFUSED.labels(refusal.reason.value).inc(len(messages))
        log.warning(
            "library photo %s refused (%s): %s; sent to the downloader for %s",
            refusal.sha256[:12],
            refusal.reason.value,
            refusal.detail,
            ", ".join(refusal.paths[:5]) + (" ..." if len(refusal.paths) > 5 else ""),
            extra={"sha256": refusal.sha256, "reason": refusal.reason.value},
        )
