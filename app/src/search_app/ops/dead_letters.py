"""Reading the dead-letter queue (``<queue>.dead``) without consuming it.

Messages are fetched with ``basic_get`` and never acknowledged: closing the channel returns every
one of them to the queue, in order, so looking never loses a message. Why each is there is read by
:func:`dyimages_common.messaging.rabbit.dead_letter_reason` (the indexer's headers, or RabbitMQ's own reason).
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from dyimages_common.messaging.rabbit import amqp_url, dead_letter_reason, declare_topology
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings


@dataclass(frozen=True)
class DeadLetter:
    reason: Reason
    detail: str
    sha256: str | None
    url: str | None
    path: str | None
    dead_lettered_at: str | None
    body: str  # the start of the raw body, for messages that are not valid JSON

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "reason": self.reason.value, "explanation": self.reason.explanation}


def _describe(message: AbstractIncomingMessage) -> DeadLetter:
    body_text = message.body.decode("utf-8", errors="replace")
    fields: dict[str, Any] = {}
    try:
        parsed = json.loads(body_text)
        if isinstance(parsed, dict):
            fields = parsed
    except ValueError:
        pass
    timestamp = message.timestamp.isoformat() if message.timestamp else None
    reason, detail = dead_letter_reason(message.headers)
    return DeadLetter(
        reason=reason,
        detail=detail,
        sha256=fields.get("sha256") if isinstance(fields.get("sha256"), str) else None,
        url=fields.get("url") if isinstance(fields.get("url"), str) else None,
        path=fields.get("path") if isinstance(fields.get("path"), str) else None,
        dead_lettered_at=timestamp,
        body=body_text[:300],
    )


async def peek_dead_letters_async(settings: RabbitSettings, limit: int = 50) -> list[DeadLetter]:
    connection = await aio_pika.connect(amqp_url(settings), client_properties={"connection_name": "dyimages-peek"})
    async with connection:
        channel = await connection.channel()
        declared = await declare_topology(channel, settings.rabbitmq_queue)
        letters: list[DeadLetter] = []
        while len(letters) < limit:
            message = await declared.dead_letter_queue.get(no_ack=False, fail=False)
            if message is None:
                break
            letters.append(_describe(message))
        # Unacknowledged: closing the channel hands every fetched message back to the queue.
        await channel.close()
        return letters


def peek_dead_letters(settings: RabbitSettings, limit: int = 50) -> list[DeadLetter]:
    """Up to ``limit`` dead-lettered messages with their reasons, oldest first; the queue keeps them all."""
    return asyncio.run(peek_dead_letters_async(settings, limit))
