"""A library photo the embedding service refused, through the real RabbitMQ: the refusal reaches the
downloader's control queue (where the library's state is written), the original is acknowledged only
after, and ``dyimages_indexer_library_refused_total`` counts it under the Reason's value."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from dyimages_common.library.refusal import CONTROL_MESSAGE, LibraryRefusal
from dyimages_common.messaging.rabbit import (
    Topology,
    connect,
    declare_control_queue,
    declare_topology,
    persistent_message,
    queue_depths,
)
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings, load_settings
from indexer.inbox import Inbox
from indexer.library_refusals import LibraryRefusals
from testkit.rabbit import next_message

pytestmark = pytest.mark.integration


def refused_count(reason: Reason) -> float:
    return REGISTRY.get_sample_value("dyimages_indexer_library_refused_total", {"reason": reason.value}) or 0.0


async def test_a_refusal_goes_to_the_control_queue_before_its_messages_are_acknowledged(
    rabbit_environment: dict[str, str],
) -> None:
    settings = load_settings(RabbitSettings)
    topology = Topology.for_queue(settings.rabbitmq_queue)
    refusal = LibraryRefusal.of("cd" * 32, ("2024/broken.jpg", "copy of broken.jpg"), Reason.CORRUPT_IMAGE, "x" * 5000)
    before = refused_count(Reason.CORRUPT_IMAGE)
    connection = await connect(settings, "test")
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        declared = await declare_topology(channel, topology.queue)
        control = await declare_control_queue(channel, topology.queue)
        for body in (b'{"n": 1}', b'{"n": 2}'):  # two messages of one image in one batch
            await channel.default_exchange.publish(persistent_message(body), routing_key=topology.queue)
        inbox = Inbox(batch_size=2, batch_wait_s=0)
        messages = [await next_message(declared.queue), await next_message(declared.queue)]
        inbox.unsettled |= set(messages)

        await LibraryRefusals(channel, control.name, inbox).send(messages, refusal)
        assert inbox.unsettled == set(), "both acknowledged once the refusal was confirmed"
        sent = await next_message(control)
        await sent.ack()
    assert CONTROL_MESSAGE.validate_json(sent.body) == refusal
    assert len(refusal.detail) == 1000, "a detail is cut to what the message keeps"
    assert refused_count(Reason.CORRUPT_IMAGE) == before + 2
    assert await queue_depths(settings) == {"queued": 0, "dead_lettered": 0}, "nothing dead-lettered"
