"""Writing image points to Qdrant: conditional writes so concurrent replicas never lose a URL.

The vector of an image is the same whoever computes it (same bytes, same model), so two writers
can only disagree about the payload's URL list. Each write therefore reads the batch's points,
merges its messages in, and writes with a condition: a new point only if it is still absent
(``insert_only``), an existing one only if its ``revision`` is still the one read
(``update_filter``). It then reads the revisions back; a point some other writer changed in
between is merged and written again. Qdrant applies the condition atomically per point, on the
server as in embedded mode.

The client is blocking: :class:`Store` runs every call on one dedicated thread, which keeps the
event loop (and the RabbitMQ heartbeats) free and serialises this process's own writes.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from dyimages_common.messages import ImageDownloaded
from dyimages_common.points import point_id
from dyimages_common.qdrant import connect_qdrant, ensure_collection
from dyimages_common.settings import QdrantSettings
from indexer.payloads import REVISION_FIELD, point_payload

log = logging.getLogger(__name__)

T = TypeVar("T")

MAX_WRITE_ROUNDS = 20


class StoreUnavailable(RuntimeError):
    """Qdrant cannot take the write now (unreachable, overloaded, disk busy): retry later."""


class StoreOpenError(RuntimeError):
    """The store cannot be opened at all with these settings."""


class StoreConflict(RuntimeError):
    """Other writers kept changing the same points for every round: retry the batch later."""


@dataclass(frozen=True)
class ImageVector:
    """One image to write: its vector and every message of this batch that names it."""

    sha256: str
    vector: np.ndarray
    events: Sequence[ImageDownloaded]


def _transient(exc: Exception) -> bool:
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429
    return isinstance(exc, ResponseHandlingException | sqlite3.OperationalError | ConnectionError | TimeoutError)


def _revision_filter(expected: list[str | None]) -> models.Filter:
    """Matches a point whose revision is one of those read (revisions are random, so only its own)."""
    conditions: list[models.Condition] = []
    tokens = [token for token in expected if token]
    if tokens:
        conditions.append(models.FieldCondition(key=REVISION_FIELD, match=models.MatchAny(any=tokens)))
    if len(tokens) < len(expected):  # a point written without a revision (by another tool)
        conditions.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=REVISION_FIELD)))
    return models.Filter(should=conditions)


def write_images(client: QdrantClient, collection: str, images: Sequence[ImageVector], *, model: str) -> int:
    """Write one point per image, merging payloads with what is stored; return the rounds it took.

    Blocking; waits until Qdrant has applied every write.
    """
    pending = {point_id(image.sha256): image for image in images}
    for round_number in range(1, MAX_WRITE_ROUNDS + 1):
        stored = {str(record.id): record.payload or {} for record in client.retrieve(collection, list(pending))}
        revision = uuid.uuid4().hex
        now = datetime.now(UTC)
        inserts: list[models.PointStruct] = []
        updates: list[models.PointStruct] = []
        expected: list[str | None] = []
        for pid, image in pending.items():
            old = stored.get(pid)
            point = models.PointStruct(
                id=pid,
                vector=image.vector.tolist(),
                payload=point_payload(old, image.events, model=model, indexed_at=now, revision=revision),
            )
            if old is None:
                inserts.append(point)
            else:
                updates.append(point)
                expected.append(old.get(REVISION_FIELD))
        if inserts:
            client.upsert(collection, inserts, wait=True, update_mode=models.UpdateMode.INSERT_ONLY)
        if updates:
            client.upsert(
                collection,
                updates,
                wait=True,
                update_mode=models.UpdateMode.UPDATE_ONLY,
                update_filter=_revision_filter(expected),
            )
        written = client.retrieve(collection, list(pending), with_payload=[REVISION_FIELD])
        done = {str(record.id) for record in written if (record.payload or {}).get(REVISION_FIELD) == revision}
        pending = {pid: image for pid, image in pending.items() if pid not in done}
        if not pending:
            return round_number
        log.info("%d point(s) changed by another writer meanwhile; merging again", len(pending))
    raise StoreConflict(f"{len(pending)} point(s) kept changing for {MAX_WRITE_ROUNDS} rounds")


class Store:
    """The Qdrant client on its own thread; async methods for the event loop."""

    def __init__(self, settings: QdrantSettings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant")
        self._client: QdrantClient | None = None

    async def _call(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, lambda: function(*args, **kwargs))
        except Exception as exc:
            if _transient(exc):
                raise StoreUnavailable(f"Qdrant unavailable: {exc!r}") from exc
            raise

    @property
    def client(self) -> QdrantClient:
        if self._client is None:
            raise RuntimeError("the store is not open")
        return self._client

    async def open(self, *, dim: int, model: str, pretrained: str) -> bool:
        """Connect and make sure the collection is this model's; True when it was created.

        Raises CollectionMismatchError when the collection belongs to another model or size.
        """
        if self._client is None:
            try:
                self._client = await self._call(connect_qdrant, self._settings)
            except RuntimeError as exc:  # embedded mode: the folder is held by another process
                raise StoreOpenError(f"cannot open Qdrant (QDRANT_PATH={self._settings.qdrant_path}): {exc}") from exc
        return await self._call(
            ensure_collection,
            self.client,
            self._settings.qdrant_collection,
            dim=dim,
            model=model,
            pretrained=pretrained,
        )

    async def write(self, images: Sequence[ImageVector], *, model: str) -> int:
        return await self._call(write_images, self.client, self._settings.qdrant_collection, images, model=model)

    async def close(self) -> None:
        if self._client is not None:
            await self._call(self._client.close)
            self._client = None
        self._executor.shutdown(wait=True)
