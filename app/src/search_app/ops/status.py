"""What the status page and `dyimages stats` show: index, model, queue, downloader state.

Each part is read on its own and reports its own error, so one service being down never hides
what the others can say.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
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
from dyimages_common.urls.refetch import RetryRequest, failure_reason, matching_failures, publish_retry_request
from search_app.ops.dead_letters import DeadLetter, peek_dead_letters
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
        return asdict(self)


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


def allow_hint(failure: url_state.UrlFailure) -> str | None:
    """For a URL refused by the SSRF guard: the setting and the CIDR that would let it through.

    The address is the one the downloader saw (under compose: on the compose network, so a server in
    another container has a 172.x address, and 127.0.0.1 is the downloader's own container).
    """
    if failure_reason(failure.reason) != "refused_address":
        return None
    for token in re.findall(r"[0-9A-Fa-f:.]{2,}", failure.reason.split(":", 1)[-1]):
        address = _ip_address(token) or _ip_address(token.rstrip(".:"))  # "::1" or "10.0.0.1:" in a sentence
        if address is None:
            continue
        cidr = f"{address}/{address.max_prefixlen}"
        return (
            f"to fetch it anyway, add {cidr} to DOWNLOADER_ALLOWED_NETWORKS (the downloader's setting, "
            "comma-separated CIDRs; restart the downloader), then `dyimages retry --reason refused_address`"
        )
    return None


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass
class Failures:
    downloads: list[url_state.UrlFailure]
    dead_letters: list[DeadLetter]
    downloads_error: str | None = None
    dead_letters_error: str | None = None

    def download_rows(self) -> list[dict[str, Any]]:
        """Each failed download with what its reason means and its ``hint`` (what would fix it, where known)."""
        return [
            {**asdict(f), "explanation": failure_reason(f.reason).explanation, "hint": allow_hint(f)}
            for f in self.downloads
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "downloads": self.download_rows(),
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


@dataclass
class RetryOutcome:
    """What a retry request asked for, and which failed URLs the state says it will reset."""

    request: RetryRequest
    matching: list[url_state.UrlFailure] | None  # None: the state could not be read
    state_error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request.request_id,
            "reason": self.request.reason,
            "urls": list(self.request.urls),
            "matching": None if self.matching is None else len(self.matching),
            "matching_urls": None if self.matching is None else [f.url for f in self.matching],
            "state_error": self.state_error,
        }


class NothingToRetry(Exception):
    """The downloader state has no failed URL that the request matches: nothing was sent."""


def request_retry(
    settings: AppSettings, *, reason: str | None = None, urls: tuple[str, ...] = (), requested_by: str
) -> RetryOutcome:
    """Ask the downloader to fetch matching failed URLs again (it alone writes its state).

    The state is read first (read-only) to say what will be retried; when it shows nothing matching
    the request is not sent (:class:`NothingToRetry`). When it cannot be read (no volume here), the
    request is sent anyway and the downloader decides. Raises one of RABBIT_ERRORS when RabbitMQ
    does not confirm the request.
    """
    request = RetryRequest(reason=reason, urls=urls, requested_by=requested_by)
    outcome = RetryOutcome(request=request, matching=None)
    try:
        outcome.matching = matching_failures(settings.state_db_path, request)
    except sqlite3.Error as exc:
        outcome.state_error = f"cannot read the downloader state {settings.state_db_path}: {exc}"
    if outcome.matching == []:
        raise NothingToRetry(f"no failed URL matches ({request.describe()}); nothing to retry")
    publish_retry_request(settings, request)
    return outcome
