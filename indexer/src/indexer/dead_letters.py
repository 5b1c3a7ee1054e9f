"""Dead-lettering: a message that can never be indexed goes to ``<queue>.dead`` with its reason.

The original body is published (confirmed) to the dead-letter exchange with the headers of
:func:`dyimages_common.messaging.rabbit.dead_letter_headers` (the :class:`~dyimages_common.reasons.Reason` in
``x-dyimages-reason``, the detail in ``x-dyimages-detail``), and only then acknowledged, so a
message is never lost between the two queues.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from dyimages_common.messaging.rabbit import Topology, dead_letter_headers, persistent_message
from dyimages_common.reasons import Reason
from indexer import metrics
from indexer.inbox import Inbox

log = logging.getLogger(__name__)


class DeadLetters:
    """The dead-letter exchange of this indexer's queue, and the inbox that settles the originals."""

    def __init__(self, exchange: AbstractExchange, topology: Topology, inbox: Inbox) -> None:
        self._exchange = exchange
        self._topology = topology
        self._inbox = inbox

    async def send(self, message: AbstractIncomingMessage, reason: Reason, detail: str) -> None:
        """Publish the original body to the dead-letter exchange (confirmed), then acknowledge it."""
        headers = dead_letter_headers(reason, detail, message.headers)
        await self._exchange.publish(
            persistent_message(message.body, headers=headers, content_type=message.content_type),
            routing_key=self._topology.dead_letter_queue,
        )
        await self._inbox.settle(message)
        metrics.DEAD_LETTERED.labels(reason.value).inc()
        log.warning(
            "dead-lettered a message (%s): %s",
            reason.value,
            detail,
            extra={"reason": reason.value, "message_id": message.message_id},
        )
