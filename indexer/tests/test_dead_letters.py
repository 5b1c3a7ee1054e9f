"""Dead letters through the real RabbitMQ: the header names a Reason that reads back as the same
member, the original is acknowledged only after, and the metric's label is the Reason's value."""

from __future__ import annotations

import pytest
from prometheus_client import REGISTRY

from dyimages_common.embeddings.client import ItemFailure
from dyimages_common.messaging.rabbit import (
    DETAIL_HEADER,
    Topology,
    connect,
    dead_letter_reason,
    declare_topology,
    persistent_message,
    queue_depths,
)
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings, load_settings
from indexer.dead_letters import DeadLetters
from indexer.embedder import known_failure
from indexer.inbox import Inbox
from testkit.rabbit import next_message

pytestmark = pytest.mark.integration


async def test_a_dead_letter_names_a_reason_that_reads_back_and_labels_the_metric(
    rabbit_environment: dict[str, str],
) -> None:
    settings = load_settings(RabbitSettings)
    topology = Topology.for_queue(settings.rabbitmq_queue)
    connection = await connect(settings, "test")
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        declared = await declare_topology(channel, topology.queue)
        for body in (b'{"n": 1}', b'{"n": 2}'):
            await channel.default_exchange.publish(
                persistent_message(body, headers={"x-trace": "t1"}), routing_key=topology.queue
            )
        inbox = Inbox(batch_size=2, batch_wait_s=0)
        first, second = await next_message(declared.queue), await next_message(declared.queue)
        inbox.unsettled |= {first, second}
        dead_letters = DeadLetters(declared.dead_letter_exchange, topology, inbox)

        await dead_letters.send(first, Reason.NOT_FOUND, "no stored image at 'ab/cd.jpg'")
        with pytest.raises(TypeError):  # a bare word would read back as unknown: refused before publishing
            await dead_letters.send(second, "not_found", "a bare word")  # type: ignore[arg-type]
        assert inbox.unsettled == {second}  # the first acknowledged; the second still held

        letter = await next_message(declared.dead_letter_queue)
        await letter.ack()
        await second.nack(requeue=True)
    assert letter.body == b'{"n": 1}'
    assert letter.headers["x-trace"] == "t1"  # the original's headers travel along
    assert dead_letter_reason(letter.headers) == (Reason.NOT_FOUND, "no stored image at 'ab/cd.jpg'")
    assert letter.headers[DETAIL_HEADER] == "no stored image at 'ab/cd.jpg'"
    assert await queue_depths(settings) == {"queued": 1, "dead_lettered": 0}

    dead = next(metric for metric in REGISTRY.collect() if metric.name == "dyimages_indexer_dead_lettered")
    labels = {sample.labels["reason"] for sample in dead.samples}
    assert "not_found" in labels
    assert labels <= {reason.value for reason in Reason}


def test_a_per_item_failure_keeps_its_reason_and_one_this_indexer_does_not_know_is_embed_failed() -> None:
    missing = ItemFailure(reason=Reason.NOT_FOUND, detail="no stored image at 'ab/cd.jpg'")
    assert known_failure(missing) == missing
    newer = ItemFailure(reason="gremlins", detail="a word from a newer service")  # reads as unknown
    assert known_failure(newer) == ItemFailure(
        reason=Reason.EMBED_FAILED, detail="unknown: a word from a newer service"
    )
