"""Isolation on the shared RabbitMQ: every test gets its own queue names, deleted afterwards."""

from __future__ import annotations

import asyncio
import socket
import uuid

import aio_pika
from aio_pika.abc import AbstractIncomingMessage, AbstractQueue

from dyimages_common.messaging.rabbit import Topology

AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


def require_rabbitmq() -> None:
    """Fail (never skip) when the broker is not there: these tests need the real one."""
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=3).close()
    except OSError as exc:
        raise RuntimeError(
            "RabbitMQ is not running on 127.0.0.1:5672; start it with `rabbitmq-server -detached`"
        ) from exc


def unique_queue_name(prefix: str = "test") -> str:
    return f"{prefix}.{uuid.uuid4().hex[:12]}.images"


def rabbit_env(queue: str) -> dict[str, str]:
    return {
        "RABBITMQ_HOST": "127.0.0.1",
        "RABBITMQ_PORT": "5672",
        "RABBITMQ_USER": "guest",
        "RABBITMQ_PASSWORD": "guest",
        "RABBITMQ_VHOST": "/",
        "RABBITMQ_QUEUE": queue,
    }


async def _delete(queue: str) -> None:
    topology = Topology.for_queue(queue)
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        for name in (topology.queue, topology.dead_letter_queue, topology.control_queue):
            await channel.queue_delete(name)
        await channel.exchange_delete(topology.dead_letter_exchange)


def delete_topology(queue: str) -> None:
    asyncio.run(_delete(queue))


async def take_messages(queue: str, idle_s: float = 5.0) -> list[bytes]:
    """Take (and acknowledge) every message ready in ``queue``; the queue must exist."""
    connection = await aio_pika.connect(AMQP_URL)
    bodies: list[bytes] = []
    async with connection:
        channel = await connection.channel()
        declared = await channel.get_queue(queue, ensure=True)
        while True:
            message = await declared.get(fail=False, timeout=idle_s)
            if message is None:
                return bodies
            bodies.append(message.body)
            await message.ack()


def read_messages(queue: str, idle_s: float = 5.0) -> list[bytes]:
    """:func:`take_messages` for blocking code."""
    return asyncio.run(take_messages(queue, idle_s))


async def next_message(queue: AbstractQueue, *, within_s: float = 5.0) -> AbstractIncomingMessage:
    """The next message on ``queue`` (not acknowledged), waiting for one that is still on its way (the
    broker dead-letters and routes asynchronously); fails when none arrives within ``within_s``."""
    deadline = asyncio.get_running_loop().time() + within_s
    while True:
        message = await queue.get(timeout=5, fail=False)
        if message is not None:
            return message
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"nothing arrived on {queue.name} within {within_s:g} s")
        await asyncio.sleep(0.05)
