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

from dyimages_common.embeddings.client import EmbeddingClient, EmbeddingUnavailable
from dyimages_common.messaging.rabbit import queue_depths
from dyimages_common.store.builds import building
from dyimages_common.store.errors import StoreUnavailable
from dyimages_common.store.protocol import ImageStore
from dyimages_common.urls import state as url_state
from search_app.settings import AppSettings

RABBIT_ERRORS: tuple[type[BaseException], ...] = (OSError, aiormq.exceptions.AMQPError, asyncio.TimeoutError)


@dataclass
class IndexStatus:
    collection: str  # the name searched (an alias)
    exists: bool = False
    serving: str | None = None  # the collection behind it
    building: str | None = None  # the collection `dyimages reindex` is building, if any
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
        """Every part; what a part could not read is null (never false or zero), its "error" says why."""
        data = asdict(self)
        if self.index.error:
            data["index"]["exists"] = None
        if self.urls.error:
            data["urls"]["counts"] = None
        return data


def index_status(index: ImageStore | None, settings: AppSettings, error: str | None = None) -> IndexStatus:
    status = IndexStatus(collection=settings.qdrant_collection, error=error)
    if index is None:
        return status
    try:
        status.serving = index.serving()
        status.building = building(index)
        status.points = index.count(status.serving) if status.serving else None
        status.exists = status.points is not None
        found = index.collection_model(status.serving) if status.serving else None
        if found is not None:
            status.model, status.dim, status.weights = found.model, found.dim, found.weights
    except StoreUnavailable as exc:
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
    index: ImageStore | None, embedding: EmbeddingClient, settings: AppSettings, qdrant_error: str | None = None
) -> Status:
    return Status(
        index=index_status(index, settings, qdrant_error),
        embedding=embedding_status(embedding, settings),
        queue=queue_status(settings),
        urls=url_status(settings),
    )
