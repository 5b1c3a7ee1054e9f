"""What the status page and `dyimages stats` show: index, model, queue, downloader state.

Each part is read on its own and reports its own error, so one service being down never hides
what the others can say.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

import aiormq
from qdrant_client import QdrantClient

from dyimages_common import url_state
from dyimages_common.embedding_api import EmbeddingClient, EmbeddingUnavailable
from dyimages_common.qdrant import collection_model, collection_weights
from dyimages_common.rabbit import queue_depths
from search_app.dead_letters import DeadLetter, peek_dead_letters
from search_app.search import QDRANT_ERRORS, QdrantUnavailable, index_size
from search_app.settings import AppSettings

RABBIT_ERRORS: tuple[type[BaseException], ...] = (OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError)


@dataclass
class IndexStatus:
    collection: str
    exists: bool = False
    points: int | None = None
    model: str | None = None
    weights: str | None = None
    dim: int | None = None
    error: str | None = None


@dataclass
class EmbeddingStatus:
    url: str
    healthy: bool = False
    model: str | None = None
    pretrained: str | None = None
    dim: int | None = None
    device: str | None = None
    error: str | None = None


@dataclass
class QueueStatus:
    queue: str
    queued: int | None = None
    dead_lettered: int | None = None
    error: str | None = None


@dataclass
class UrlStatus:
    state_db: str
    counts: dict[str, int] = field(default_factory=dict)
    error: str | None = None


@dataclass
class Status:
    index: IndexStatus
    embedding: EmbeddingStatus
    queue: QueueStatus
    urls: UrlStatus

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def index_status(qdrant: QdrantClient | None, settings: AppSettings, error: str | None = None) -> IndexStatus:
    status = IndexStatus(collection=settings.qdrant_collection, error=error)
    if qdrant is None:
        return status
    try:
        status.points = index_size(qdrant, settings.qdrant_collection)
        status.exists = status.points is not None
        if status.exists:
            status.model, status.dim = collection_model(qdrant, settings.qdrant_collection)
            status.weights = collection_weights(qdrant, settings.qdrant_collection)
    except (QdrantUnavailable, *QDRANT_ERRORS) as exc:
        status.error = str(exc)
    return status


def embedding_status(client: EmbeddingClient, settings: AppSettings) -> EmbeddingStatus:
    status = EmbeddingStatus(url=settings.embedding_service_url)
    try:
        info = client.info()
    except EmbeddingUnavailable as exc:
        status.error = str(exc)
        return status
    status.healthy = client.healthy()
    status.model, status.pretrained, status.dim, status.device = info.model, info.pretrained, info.dim, info.device
    return status


def queue_status(settings: AppSettings) -> QueueStatus:
    status = QueueStatus(queue=settings.rabbitmq_queue)
    try:
        depths = asyncio.run(asyncio.wait_for(queue_depths(settings), timeout=10))
    except RABBIT_ERRORS as exc:
        status.error = f"RabbitMQ at {settings.rabbitmq_host}:{settings.rabbitmq_port} is not answering: {exc!r}"
        return status
    status.queued, status.dead_lettered = depths["queued"], depths["dead_lettered"]
    return status


def url_status(settings: AppSettings) -> UrlStatus:
    status = UrlStatus(state_db=str(settings.state_db_path))
    try:
        status.counts = url_state.status_counts(settings.state_db_path)
    except sqlite3.Error as exc:
        status.error = f"cannot read the downloader state {settings.state_db_path}: {exc}"
    return status


def collect_status(
    qdrant: QdrantClient | None, embedding: EmbeddingClient, settings: AppSettings, qdrant_error: str | None = None
) -> Status:
    return Status(
        index=index_status(qdrant, settings, qdrant_error),
        embedding=embedding_status(embedding, settings),
        queue=queue_status(settings),
        urls=url_status(settings),
    )


@dataclass
class Failures:
    downloads: list[url_state.UrlFailure]
    dead_letters: list[DeadLetter]
    downloads_error: str | None = None
    dead_letters_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "downloads": [asdict(f) for f in self.downloads],
            "dead_letters": [d.to_json() for d in self.dead_letters],
            "downloads_error": self.downloads_error,
            "dead_letters_error": self.dead_letters_error,
        }


def collect_failures(settings: AppSettings, limit: int = 50) -> Failures:
    """Permanent download failures (state DB) and dead-lettered messages (peeked, never consumed)."""
    failures = Failures(downloads=[], dead_letters=[])
    try:
        failures.downloads = url_state.recent_failures(settings.state_db_path, limit=limit)
    except sqlite3.Error as exc:
        failures.downloads_error = f"cannot read the downloader state {settings.state_db_path}: {exc}"
    try:
        failures.dead_letters = peek_dead_letters(settings, limit=limit)
    except RABBIT_ERRORS as exc:
        failures.dead_letters_error = f"RabbitMQ is not answering: {exc!r}"
    return failures
