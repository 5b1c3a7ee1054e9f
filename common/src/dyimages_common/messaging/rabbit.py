"""RabbitMQ topology shared by the downloader (publisher) and the indexer (consumer).

* ``RABBITMQ_QUEUE`` (default ``images.downloaded``): a durable quorum queue. A message returned
  to it more than :data:`DELIVERY_LIMIT` times (crash loops) is dead-lettered by RabbitMQ itself.
* ``<queue>.dlx``: a direct exchange; ``<queue>.dead``: the dead-letter queue bound to it. The
  indexer publishes a message it can never process there itself, with :func:`dead_letter_headers`
  (a :class:`~dyimages_common.reasons.Reason` in :data:`REASON_HEADER`, the detail a person reads
  in :data:`DETAIL_HEADER`), then acknowledges the original. :func:`dead_letter_reason` reads
  either back, or RabbitMQ's own ``x-death`` reason for a message the broker dead-lettered.
* ``<queue>.control``: the downloader's control queue (durable, quorum): requests to fetch failed
  URLs again (:mod:`dyimages_common.urls.refetch`), published by ``dyimages retry`` and the app,
  consumed by the downloader. One it cannot read, or one that keeps crashing it, goes to
  ``<queue>.dead`` like any other dead letter.

Every declaration uses the same arguments everywhere: RabbitMQ refuses a redeclaration with
different ones, so they live here and nowhere else. Every message the project publishes is built by
:func:`persistent_message`, so each has the same durability and the same ``message_id`` rule.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractExchange, AbstractQueue, AbstractRobustConnection

from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings

DELIVERY_LIMIT = 20
REASON_HEADER = "x-dyimages-reason"  # a Reason's value
DETAIL_HEADER = "x-dyimages-detail"  # what a person reads, at most MAX_DETAIL_CHARS
MAX_DETAIL_CHARS = 2000


def dead_letter_headers(reason: Reason, detail: str, original: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The headers of a dead letter: the original message's, then why it can never be processed."""
    if not isinstance(reason, Reason):  # the header is read back as a Reason: a bare word would read as unknown
        raise TypeError(f"a dead letter names a Reason, not {reason!r}")
    return {**(original or {}), REASON_HEADER: reason.value, DETAIL_HEADER: detail[:MAX_DETAIL_CHARS]}


def dead_letter_reason(headers: Mapping[str, Any] | None) -> tuple[Reason, str]:
    """Why a dead letter is there, and the detail: the indexer's headers, else RabbitMQ's ``x-death``
    reason (``delivery_limit``, ``rejected``). A word this version does not know reads as
    ``Reason.UNKNOWN`` with the word kept at the start of the detail."""
    headers = headers or {}
    detail = _text(headers.get(DETAIL_HEADER))
    word = _text(headers.get(REASON_HEADER))
    if not word:
        deaths = headers.get("x-death")
        if isinstance(deaths, list) and deaths and isinstance(deaths[0], Mapping):
            word = _text(deaths[0].get("reason"))
        word = word or _text(headers.get("x-first-death-reason"))
        detail = detail or (f"dead-lettered by RabbitMQ ({word})" if word else "")
    reason = Reason.parse(word)
    if reason is Reason.UNKNOWN and word:
        detail = f"{word}: {detail}" if detail else word
    return reason, detail


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return "" if value is None else str(value)


def persistent_message(
    body: bytes, *, headers: Mapping[str, Any] | None = None, content_type: str | None = "application/json"
) -> aio_pika.Message:
    """A message that survives a broker restart (persistent, on durable quorum queues).

    Its ``message_id`` is the SHA-256 of the body: the same message has the same id wherever it goes
    (sent again after a lost confirm, republished by a reindex, copied to the dead-letter queue), so
    a log line or a dead letter can be matched with the message it came from.
    """
    return aio_pika.Message(
        body,
        headers=dict(headers) if headers else None,
        content_type=content_type,
        message_id=hashlib.sha256(body).hexdigest(),
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


@dataclass(frozen=True)
class Topology:
    queue: str
    dead_letter_exchange: str
    dead_letter_queue: str
    control_queue: str

    @classmethod
    def for_queue(cls, queue: str) -> Topology:
        return cls(
            queue=queue,
            dead_letter_exchange=f"{queue}.dlx",
            dead_letter_queue=f"{queue}.dead",
            control_queue=f"{queue}.control",
        )


@dataclass(frozen=True)
class DeclaredTopology:
    queue: AbstractQueue
    dead_letter_exchange: AbstractExchange
    dead_letter_queue: AbstractQueue


def amqp_url(settings: RabbitSettings) -> str:
    user = quote(settings.rabbitmq_user, safe="")
    password = quote(settings.rabbitmq_password.get_secret_value(), safe="")
    vhost = quote(settings.rabbitmq_vhost, safe="")
    return f"amqp://{user}:{password}@{settings.rabbitmq_host}:{settings.rabbitmq_port}/{vhost}"


async def connect(settings: RabbitSettings, name: str) -> AbstractRobustConnection:
    """A robust connection: it reconnects and redeclares by itself after the broker comes back."""
    return await aio_pika.connect_robust(amqp_url(settings), client_properties={"connection_name": name})


async def declare_topology(channel: AbstractChannel, queue_name: str) -> DeclaredTopology:
    topology = Topology.for_queue(queue_name)
    dlx = await channel.declare_exchange(topology.dead_letter_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    dead = await channel.declare_queue(topology.dead_letter_queue, durable=True, arguments={"x-queue-type": "quorum"})
    await dead.bind(dlx, routing_key=topology.dead_letter_queue)
    queue = await channel.declare_queue(topology.queue, durable=True, arguments=_dead_lettering_arguments(topology))
    return DeclaredTopology(queue=queue, dead_letter_exchange=dlx, dead_letter_queue=dead)


async def declare_control_queue(channel: AbstractChannel, queue_name: str) -> AbstractQueue:
    """The downloader's control queue for ``queue_name``, after the topology its dead letters go to."""
    topology = Topology.for_queue(queue_name)
    await declare_topology(channel, queue_name)
    return await channel.declare_queue(
        topology.control_queue, durable=True, arguments=_dead_lettering_arguments(topology)
    )


def _dead_lettering_arguments(topology: Topology) -> dict[str, Any]:
    """A quorum queue whose messages go to ``<queue>.dead`` after DELIVERY_LIMIT deliveries."""
    return {
        "x-queue-type": "quorum",
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": topology.dead_letter_exchange,
        "x-dead-letter-routing-key": topology.dead_letter_queue,
    }


async def queue_depths(settings: RabbitSettings) -> dict[str, int]:
    """Ready messages in the work queue and the dead-letter queue (for status pages and tests)."""
    connection = await aio_pika.connect(amqp_url(settings), client_properties={"connection_name": "depths"})
    async with connection:
        channel = await connection.channel()
        declared = await declare_topology(channel, settings.rabbitmq_queue)
        return {
            "queued": declared.queue.declaration_result.message_count or 0,
            "dead_lettered": declared.dead_letter_queue.declaration_result.message_count or 0,
        }
