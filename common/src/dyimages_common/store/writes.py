"""The conditional write of image points: concurrent writers never lose a URL.

The vector of an image is the same whoever computes it (same bytes, same model), so two writers can
only disagree about the payload's URL list. Each write therefore reads the batch's points, merges its
messages in (:meth:`ImagePoint.merged`), and writes with a condition: a new point only if it is still
absent (``insert_only``), an existing one only if its ``revision`` is still the one read
(``update_filter``). It then reads the revisions back; a point some other writer changed in between is
merged and written again. Qdrant applies the condition atomically per point, on the server as in
embedded mode. Used only through :meth:`dyimages_common.image_index.ImageIndex.write`.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
from qdrant_client import QdrantClient, models

from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.points import REVISION_FIELD, ImagePoint, point_id
from dyimages_common.store_errors import StoreConflict

log = logging.getLogger(__name__)

MAX_WRITE_ROUNDS = 20


@dataclass(frozen=True)
class ImageVector:
    """One image to write: its vector and every message of this batch that names it."""

    sha256: str
    vector: np.ndarray
    events: Sequence[ImageDownloaded]


def _revision_filter(expected: str | None) -> models.Filter:
    """Matches a point whose revision is still the one read, or still none (a point another tool wrote)."""
    if expected:
        return models.Filter(must=[models.FieldCondition(key=REVISION_FIELD, match=models.MatchValue(value=expected))])
    return models.Filter(must=[models.IsEmptyCondition(is_empty=models.PayloadField(key=REVISION_FIELD))])


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
        # The condition applies to a whole call, so updates go in one call per revision read: one
        # condition for a whole batch ("any revision read") would let a point that another writer changed
        # to a revision read for a *different* point of this batch be overwritten, losing its new URLs.
        updates: dict[str | None, list[models.PointStruct]] = {}
        for pid, image in pending.items():
            old = stored.get(pid)
            existing = ImagePoint.from_payload(old) if old is not None else None
            point = ImagePoint.merged(existing, image.events, model=model, indexed_at=now, revision=revision)
            struct = models.PointStruct(id=pid, vector=image.vector.tolist(), payload=point.to_payload())
            if old is None:
                inserts.append(struct)
            else:
                updates.setdefault(old.get(REVISION_FIELD) or None, []).append(struct)
        if inserts:
            client.upsert(collection, inserts, wait=True, update_mode=models.UpdateMode.INSERT_ONLY)
        for expected, structs in updates.items():
            client.upsert(
                collection,
                structs,
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
