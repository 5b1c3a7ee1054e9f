"""What the soak looks at once every service has stopped: Qdrant, the URL state, the queues.

Read-only throughout: the embedded Qdrant folder is opened only after the last indexer exited, the
downloader's SQLite state through ``dyimages_common.url_state``'s read-only views or a read-only
connection, and dead letters are fetched without acknowledging them (closing returns them).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aio_pika
from qdrant_client import QdrantClient

from dyimages_common.points import point_id
from dyimages_common.rabbit import REASON_HEADER, Topology
from testkit.rabbit import AMQP_URL


@dataclass(frozen=True)
class IndexedImages:
    payloads: list[dict[str, Any]]
    wrong_ids: int  # points whose id is not point_id(payload sha256)

    @property
    def sha256s(self) -> Counter[str]:
        return Counter(str(p.get("sha256")) for p in self.payloads)

    @property
    def duplicates(self) -> int:
        """Points beyond the first for the same content."""
        return sum(count - 1 for count in self.sha256s.values() if count > 1)

    def last_indexed_at(self) -> float | None:
        stamps = [datetime.fromisoformat(str(p["indexed_at"])).timestamp() for p in self.payloads if "indexed_at" in p]
        return max(stamps) if stamps else None


def read_points(qdrant_path: Path, collection: str = "images") -> IndexedImages:
    client = QdrantClient(path=str(qdrant_path))
    try:
        if not client.collection_exists(collection):
            return IndexedImages([], 0)
        payloads: list[dict[str, Any]] = []
        wrong_ids = 0
        offset = None
        while True:
            points, offset = client.scroll(collection, limit=1000, offset=offset, with_payload=True, with_vectors=False)
            for point in points:
                payload = dict(point.payload or {})
                payloads.append(payload)
                wrong_ids += str(point.id) != point_id(str(payload.get("sha256")))
            if offset is None:
                return IndexedImages(payloads, wrong_ids)
    finally:
        client.close()


@dataclass(frozen=True)
class UrlRow:
    status: str
    last_error: str
    sha256: str | None


def read_url_state(state_db: Path) -> dict[str, UrlRow]:
    if not state_db.exists():
        return {}
    connection = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        rows = connection.execute("SELECT url, status, COALESCE(last_error, ''), sha256 FROM urls").fetchall()
    finally:
        connection.close()
    return {url: UrlRow(status, error, sha) for url, status, error, sha in rows}


@dataclass(frozen=True)
class QueueState:
    ready: int
    dead_letter_reasons: Counter[str]

    @property
    def dead_lettered(self) -> int:
        return sum(self.dead_letter_reasons.values())


def _reason(message: aio_pika.abc.AbstractIncomingMessage) -> str:
    headers = message.headers or {}
    reason = headers.get(REASON_HEADER)
    if reason is None and headers.get("x-death"):  # dead-lettered by the broker (delivery limit)
        reason = f"broker:{headers['x-death'][0].get('reason')}"  # type: ignore[index,union-attr]
    if isinstance(reason, bytes):
        reason = reason.decode("utf-8", "replace")
    return str(reason) if reason else "(no reason)"


async def _queue_state(queue: str) -> QueueState:
    topology = Topology.for_queue(queue)
    connection = await aio_pika.connect(AMQP_URL, client_properties={"connection_name": "soak-checks"})
    async with connection:
        channel = await connection.channel()
        work = await channel.declare_queue(topology.queue, passive=True)
        dead = await channel.declare_queue(topology.dead_letter_queue, passive=True)
        reasons: Counter[str] = Counter()
        while (message := await dead.get(no_ack=False, fail=False)) is not None:
            reasons[_reason(message)] += 1  # not acknowledged: closing the channel returns it
        return QueueState(work.declaration_result.message_count or 0, reasons)


def read_queues(queue: str) -> QueueState:
    return asyncio.run(_queue_state(queue))


async def _ready(queue: str) -> int:
    connection = await aio_pika.connect(AMQP_URL, client_properties={"connection_name": "soak-watch"})
    async with connection:
        channel = await connection.channel()
        declared = await channel.declare_queue(queue, passive=True)
        return declared.declaration_result.message_count or 0


def ready_messages(queue: str) -> int | None:
    """Messages ready in the work queue; None before anyone declared it."""
    try:
        return asyncio.run(_ready(queue))
    except aio_pika.exceptions.ChannelClosed:
        return None
