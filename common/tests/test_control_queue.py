"""The downloader's control queue (``<queue>.control``): durable, and a request whose handling keeps
failing is dead-lettered by the broker after DELIVERY_LIMIT deliveries, never returned for ever."""

import asyncio

import aio_pika
import pytest

from dyimages_common.messaging.rabbit import DELIVERY_LIMIT, Topology, connect, declare_control_queue
from dyimages_common.settings import RabbitSettings, load_settings
from dyimages_common.urls.refetch import RetryRequest, publish_retry_request_async

pytestmark = pytest.mark.integration


async def test_a_request_that_keeps_coming_back_ends_in_the_dead_letter_queue(
    rabbit_environment: dict[str, str],
) -> None:
    settings = load_settings(RabbitSettings)
    request = RetryRequest(reason="timeout", requested_by="test")
    await publish_retry_request_async(settings, request)  # declares the queue, waits for the confirm
    connection = await connect(settings, "test")
    async with connection:
        channel = await connection.channel()
        control = await declare_control_queue(channel, settings.rabbitmq_queue)  # same arguments: accepted
        assert control.name == Topology.for_queue(settings.rabbitmq_queue).control_queue
        assert control.declaration_result.message_count == 1
        for _ in range(DELIVERY_LIMIT + 1):
            message = await control.get(timeout=5)
            assert RetryRequest.model_validate_json(message.body) == request
            await message.nack(requeue=True)
        dead_queue = await channel.get_queue(Topology.for_queue(settings.rabbitmq_queue).dead_letter_queue)
        dead: aio_pika.abc.AbstractIncomingMessage | None = None
        for _ in range(50):  # dead-lettering happens asynchronously inside the broker
            dead = await dead_queue.get(timeout=5, fail=False)
            if dead is not None:
                break
            await asyncio.sleep(0.1)
        assert dead is not None
        assert RetryRequest.model_validate_json(dead.body).request_id == request.request_id
        await dead.ack()
        assert await control.get(timeout=5, fail=False) is None
