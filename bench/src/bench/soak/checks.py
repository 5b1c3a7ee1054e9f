"""What the soak looks at once every service has stopped: the audit's ledgers, and when the last image was indexed.

The oracle is ``dyimages audit``'s own code (:mod:`search_app.ops.audit`): the URL file, the downloader's
state, the images folder, the index and the dead letters, read once (read-only; dead letters are
peeked, never consumed) and held against each other. The soak adds only what the audit cannot know:
which URLs of its catalog are good and which bad.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

import aio_pika

from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.factory import open_store
from search_app.clients import open_index
from search_app.ops.audit import AuditReport, check
from search_app.ops.ledgers import Ledgers, read_ledgers
from search_app.settings import AppSettings
from testkit.rabbit import AMQP_URL, rabbit_env

COLLECTION = "images"


@dataclass(frozen=True)
class Audited:
    ledgers: Ledgers
    report: AuditReport


def audit_run(urls_file: Path, images_dir: Path, state_db: Path, qdrant_path: Path, queue: str) -> Audited:
    """Audit one run's pipeline exactly as `dyimages audit` would with these settings."""
    overrides = {key.lower(): value for key, value in rabbit_env(queue).items()}
    settings = load_settings(
        AppSettings,
        urls_file=urls_file,
        images_dir=images_dir,
        state_db=state_db,
        qdrant_path=qdrant_path,
        qdrant_collection=COLLECTION,
        **overrides,
    )
    client = open_index(settings)
    try:
        ledgers = read_ledgers(settings, client)
    finally:
        client.close()
    return Audited(ledgers, check(ledgers, images_dir))


def last_indexed_at(qdrant_path: Path) -> float | None:
    """The latest ``indexed_at`` of any point (the end of the run's indexing), as a timestamp."""
    index = open_store(load_settings(QdrantSettings, qdrant_path=qdrant_path, qdrant_collection=COLLECTION))
    try:
        if index.serving() is None:
            return None
        stamps = [point.indexed_at.timestamp() for _, point in index.points() if point.indexed_at is not None]
        return max(stamps, default=None)
    finally:
        index.close()


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
