"""The soak's attacks: a seeded plan of SIGKILLs and restarts, broker connection drops, poison.

Events fire once the pipeline has indexed a (random) fraction of the good images (the downloader
restart: once a fraction of the URLs is settled), so that attacks land while work is in flight; the
soak records, for each kill, whether it did.
Connection drops close only the soak's own connections (``rabbitmqctl close_connection``), found by
the client ports of the soak's processes: ``close_all_connections`` would also cut the other users
of a shared broker.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, datetime

import aio_pika
import psutil

from dyimages_common.images.storage import stored_path
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.messaging.rabbit import declare_topology
from testkit.rabbit import AMQP_URL

AMQP_PORT = 5672
KILL_INDEXER = "kill_indexer"
KILL_EMBEDDING = "kill_embedding"
KILL_DOWNLOADER = "kill_downloader"
RESTART_DOWNLOADER = "restart_downloader"
CLOSE_CONNECTIONS = "close_connections"
POISON = "poison"


@dataclass
class ChaosEvent:
    action: str
    at: float  # fraction of its measure reached when it fires
    measure: str = "indexed"  # "indexed": good images indexed; "settled": URLs downloaded or failed
    fired_at: float | None = None  # the fraction really reached when it fired
    detail: str = ""
    in_flight: bool | None = None  # kills: whether work was in flight when it landed


def chaos_plan(
    rng: random.Random, *, indexer_kills: int, embedding_kills: int, downloader_kills: int = 0
) -> list[ChaosEvent]:
    """Attacks in random order at random moments; the downloader's while URLs are being fetched."""
    actions = [KILL_INDEXER] * indexer_kills + [KILL_EMBEDDING] * embedding_kills + [POISON]
    moments = sorted(rng.uniform(0.05, 0.85) for _ in actions)
    rng.shuffle(actions)
    plan = [ChaosEvent(action, at) for action, at in zip(actions, moments, strict=True)]
    # While URLs are fetched the downloader publishes and the indexer consumes: the moment to cut both.
    downloader = [RESTART_DOWNLOADER, CLOSE_CONNECTIONS] + [KILL_DOWNLOADER] * downloader_kills
    moments = sorted(rng.uniform(0.15, 0.75) for _ in downloader)
    rng.shuffle(downloader)
    return plan + [ChaosEvent(a, at, measure="settled") for a, at in zip(downloader, moments, strict=True)]


def _client_ports(pids: list[int]) -> set[int]:
    """Local ports of the AMQP connections held by these processes and their children."""
    ports: set[int] = set()
    for pid in pids:
        try:
            root = psutil.Process(pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for process in processes:
            try:
                connections = process.net_connections(kind="tcp")
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            ports |= {c.laddr.port for c in connections if c.raddr and c.raddr.port == AMQP_PORT}
    return ports


def _rabbitmqctl(*args: str) -> str:
    """Run rabbitmqctl (it needs the broker's Erlang cookie: root, or passwordless sudo)."""
    command = ["rabbitmqctl", "-q", *args]
    if os.geteuid() != 0 and shutil.which("sudo"):
        command = ["sudo", "-n", *command]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    if result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}): {result.stderr.strip()[:500]} "
            "(the soak closes broker connections with rabbitmqctl: run it as root or with passwordless sudo)"
        )
    return result.stdout


def close_connections(pids: list[int], reason: str = "soak") -> int:
    """Close the broker connections of these processes from the broker's side; returns how many."""
    ports = _client_ports(pids)
    closed = 0
    for line in _rabbitmqctl("list_connections", "--no-table-headers", "pid", "peer_port").splitlines():
        fields = line.split("\t")
        if len(fields) == 2 and fields[1].strip().isdigit() and int(fields[1]) in ports:
            _rabbitmqctl("close_connection", fields[0].strip(), reason)
            closed += 1
    return closed


def poison_messages() -> list[bytes]:
    """Messages no indexer can ever process: each must reach ``<queue>.dead`` with a reason."""
    missing = hashlib.sha256(b"soak: an image that was never stored").hexdigest()
    never_stored = ImageDownloaded(
        sha256=missing,
        path=stored_path(missing, "jpg"),
        url="http://127.0.0.1/soak/never-stored.jpg",
        content_type="image/jpeg",
        width=10,
        height=10,
        bytes=1000,
        downloaded_at=datetime.now(UTC),
    )
    wrong_version = json.loads(never_stored.model_dump_json())
    wrong_version["schema_version"] = 99
    return [b"{not json", json.dumps(wrong_version).encode(), never_stored.model_dump_json().encode()]


async def _publish(queue: str, bodies: list[bytes]) -> None:
    connection = await aio_pika.connect(AMQP_URL, client_properties={"connection_name": "soak-poison"})
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await declare_topology(channel, queue)  # unroutable otherwise, if nobody declared it yet
        for body in bodies:
            await channel.default_exchange.publish(
                aio_pika.Message(body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=queue,
            )


def publish_poison(queue: str) -> int:
    bodies = poison_messages()
    asyncio.run(_publish(queue, bodies))
    return len(bodies)
