import hashlib

import aio_pika
import pytest

from dyimages_common.messaging.rabbit import (
    DELIVERY_LIMIT,
    DETAIL_HEADER,
    MAX_DETAIL_CHARS,
    REASON_HEADER,
    Topology,
    connect,
    dead_letter_headers,
    dead_letter_reason,
    declare_topology,
    persistent_message,
    queue_depths,
)
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings, load_settings
from testkit.rabbit import next_message

pytestmark = pytest.mark.integration


async def test_topology_routes_dead_letters_and_counts_depths(rabbit_environment: dict[str, str]) -> None:
    settings = load_settings(RabbitSettings)
    topology = Topology.for_queue(settings.rabbitmq_queue)
    connection = await connect(settings, "test")
    async with connection:
        channel = await connection.channel()
        declared = await declare_topology(channel, settings.rabbitmq_queue)
        # A second declaration with the same arguments is accepted (every service declares it).
        await declare_topology(await connection.channel(), settings.rabbitmq_queue)
        await channel.default_exchange.publish(
            aio_pika.Message(b"{}", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=topology.queue
        )
        await declared.dead_letter_exchange.publish(
            aio_pika.Message(b"bad", headers={REASON_HEADER: "invalid_json"}),
            routing_key=topology.dead_letter_queue,
        )
    assert await queue_depths(settings) == {"queued": 1, "dead_lettered": 1}


async def test_rejected_messages_are_dead_lettered_by_the_broker(rabbit_environment: dict[str, str]) -> None:
    """A message returned more than DELIVERY_LIMIT times goes to the dead-letter queue, not back forever."""
    settings = load_settings(RabbitSettings)
    connection = await connect(settings, "test")
    async with connection:
        channel = await connection.channel()
        declared = await declare_topology(channel, settings.rabbitmq_queue)
        await channel.default_exchange.publish(aio_pika.Message(b"poison"), routing_key=settings.rabbitmq_queue)
        for _ in range(DELIVERY_LIMIT + 1):
            message = await declared.queue.get(timeout=5)
            await message.nack(requeue=True)
        dead = await next_message(declared.dead_letter_queue)
        assert dead.body == b"poison"
        assert dead_letter_reason(dead.headers) == (Reason.DELIVERY_LIMIT, "dead-lettered by RabbitMQ (delivery_limit)")
        assert await declared.queue.get(timeout=5, fail=False) is None
        await dead.ack()


async def test_a_persistent_message_arrives_persistent_with_the_id_of_its_body(
    rabbit_environment: dict[str, str],
) -> None:
    """One rule for every publisher: the same body has the same message_id wherever it is published."""
    settings = load_settings(RabbitSettings)
    connection = await connect(settings, "test")
    async with connection:
        channel = await connection.channel()
        declared = await declare_topology(channel, settings.rabbitmq_queue)
        for body in (b'{"a": 1}', b'{"a": 1}', b'{"a": 2}'):
            await channel.default_exchange.publish(
                persistent_message(body, headers={REASON_HEADER: "x"}), routing_key=settings.rabbitmq_queue
            )
        received = []
        for _ in range(3):
            message = await declared.queue.get(timeout=5)
            await message.ack()
            received.append(message)
    assert {m.delivery_mode for m in received} == {aio_pika.DeliveryMode.PERSISTENT}
    assert [m.message_id for m in received] == [hashlib.sha256(m.body).hexdigest() for m in received]
    assert received[0].message_id == received[1].message_id != received[2].message_id
    assert received[0].headers[REASON_HEADER] == "x"
    assert received[0].content_type == "application/json"


async def test_a_dead_letter_header_reads_back_as_its_reason_through_the_broker(
    rabbit_environment: dict[str, str],
) -> None:
    """The header contract: a Reason and its detail go out with the message's own headers and come
    back from the real broker as the same Reason; a message the consumer rejected reads as ``rejected``."""
    settings = load_settings(RabbitSettings)
    topology = Topology.for_queue(settings.rabbitmq_queue)
    connection = await connect(settings, "test")
    async with connection:
        channel = await connection.channel()
        declared = await declare_topology(channel, settings.rabbitmq_queue)
        headers = dead_letter_headers(Reason.EMBED_TIMEOUT, "x" * 5000, {"x-trace": "t1"})
        await declared.dead_letter_exchange.publish(
            persistent_message(b"late", headers=headers), routing_key=topology.dead_letter_queue
        )
        await channel.default_exchange.publish(aio_pika.Message(b"refused"), routing_key=topology.queue)
        await (await declared.queue.get(timeout=5)).reject(requeue=False)
        ours = await next_message(declared.dead_letter_queue)
        rejected = await next_message(declared.dead_letter_queue)
        for letter in (ours, rejected):
            await letter.ack()
    assert ours.headers[REASON_HEADER] == "embed_timeout"
    assert ours.headers["x-trace"] == "t1"
    assert dead_letter_reason(ours.headers) == (Reason.EMBED_TIMEOUT, "x" * MAX_DETAIL_CHARS)
    assert dead_letter_reason(rejected.headers)[0] is Reason.REJECTED


def test_dead_letter_headers_take_a_reason_and_old_or_foreign_words_read_back() -> None:
    with pytest.raises(TypeError):
        dead_letter_headers("embed_timeout", "a bare word")  # type: ignore[arg-type]
    assert dead_letter_reason({REASON_HEADER: b"http_418", DETAIL_HEADER: b"teapot"}) == (Reason.HTTP_4XX, "teapot")
    assert dead_letter_reason({REASON_HEADER: "gremlins", DETAIL_HEADER: "d"}) == (Reason.UNKNOWN, "gremlins: d")
    assert dead_letter_reason({}) == (Reason.UNKNOWN, "")
    assert dead_letter_reason({"x-first-death-reason": "expired"}) == (
        Reason.UNKNOWN,
        "expired: dead-lettered by RabbitMQ (expired)",
    )
