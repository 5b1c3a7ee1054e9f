"""Dead-lettering: a message that can never be indexed goes to ``<queue>.dead`` with its reason.

The original body is published (confirmed) to the dead-letter exchange with the reason word in the
``x-dyimages-reason`` header and the detail in ``x-dyimages-detail``, and only then acknowledged,
so a message is never lost between the two queues.
"""

from __future__ import annotations

import logging

from aio_pika.abc import AbstractExchange, AbstractIncomingMessage

from dyimages_common.rabbit import REASON_HEADER, Topology, persistent_message
from indexer import metrics
from indexer.batch import Refusal
from indexer.inbox import Inbox

log = logging.getLogger(__name__)

DETAIL_HEADER = "x-dyimages-detail"


async def dead_letter(
    exchange: AbstractExchange,
    topology: Topology,
    inbox: Inbox,
    message: AbstractIncomingMessage,
    refusal: Refusal,
) -> None:
    """Publish the original body to the dead-letter exchange (confirmed), then acknowledge it."""
    headers = dict(message.headers or {})
    headers[REASON_HEADER] = refusal.reason
    headers[DETAIL_HEADER] = refusal.detail[:2000]
    await exchange.publish(
        persistent_message(message.body, headers=headers, content_type=message.content_type),
        routing_key=topology.dead_letter_queue,
    )
    await inbox.settle(message)
    metrics.DEAD_LETTERED.labels(refusal.reason).inc()
    log.warning(
        "dead-lettered a message (%s): %s",
        refusal.reason,
        refusal.detail,
        extra={"reason": refusal.reason, "message_id": message.message_id},
    )
