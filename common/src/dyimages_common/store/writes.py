"""The conditional write of image points: concurrent writers never lose a URL.

The vector of an image is the same whoever computes it (same bytes, same model), so two writers can
only disagree about the payload's URL list. Each write therefore reads the batch's points, merges its
messages in (:meth:`ImagePoint.merged`), and writes with a condition: a new point only if it is still
absent, an existing one only if its ``revision`` is still the one read. It then reads the revisions
back; a point some other writer changed in between is merged and written again. Every engine applies
the condition atomically per point (:meth:`~dyimages_common.store.engine.Engine.update_if`).

An image may come without a vector (a library photo renamed, copied or deleted): its stored vector is
kept. A point the merge leaves with no source (no URL, no library file) is deleted, on the same condition.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from dyimages_common.store.engine import Engine
from dyimages_common.store.errors import StoreConflict, VectorNeeded
from dyimages_common.store.points import REVISION_FIELD, ImagePoint, point_id
from dyimages_common.store.types import ImageVector, PointFilter, Row

log = logging.getLogger(__name__)

MAX_WRITE_ROUNDS = 20
CHANGED_MEANWHILE = "%d point(s) changed by another writer meanwhile; merging again"


def _settled(engine: Engine, collection: str, ids: Sequence[str], revision: str) -> set[str]:
    """The ids whose stored revision is ``revision`` (this round's writes that held)."""
    return {row.id for row in engine.retrieve(collection, ids) if row.payload.get(REVISION_FIELD) == revision}


def write_images(engine: Engine, collection: str, images: Sequence[ImageVector], *, model: str) -> int:
    """Write one point per image, merging payloads with what is stored; return the rounds it took."""
    pending = {point_id(image.sha256): image for image in images}
    for round_number in range(1, MAX_WRITE_ROUNDS + 1):
        keep_vectors = any(image.vector is None for image in pending.values())
        stored = {row.id: row for row in engine.retrieve(collection, list(pending), vectors=keep_vectors)}
        revision, now = uuid.uuid4().hex, datetime.now(UTC)
        inserts: list[Row] = []
        # The condition holds for a whole call, so updates go in one call per revision read: one condition
        # for the batch ("any revision read") would let a point that another writer changed to a revision
        # read for a *different* point of this batch be overwritten, losing its new URLs.
        updates: dict[str | None, list[Row]] = {}
        deletes: dict[str | None, list[str]] = {}
        nothing_to_do: set[str] = set()
        for pid, image in pending.items():
            old = stored.get(pid)
            existing = ImagePoint.from_payload(old.payload) if old is not None else None
            point = ImagePoint.merged(existing, image.events, model=model, indexed_at=now, revision=revision)
            expected = (old.payload.get(REVISION_FIELD) or None) if old is not None else None
            if not point.has_source:
                if old is None:
                    nothing_to_do.add(pid)
                else:
                    deletes.setdefault(expected, []).append(pid)
                continue
            vector = image.vector if image.vector is not None else (old.vector if old is not None else None)
            if vector is None:
                raise VectorNeeded(f"the point of {image.sha256} is gone: its image must be embedded")
            row = Row(id=pid, payload=point.to_payload(), vector=vector)
            if old is None:
                inserts.append(row)
            else:
                updates.setdefault(expected, []).append(row)
        if inserts:
            engine.insert_new(collection, inserts)
        for expected, rows in updates.items():
            engine.update_if(collection, rows, expected)
        for expected, ids in deletes.items():
            engine.delete_if(collection, ids, expected)
        done = _settled(engine, collection, list(pending), revision) | nothing_to_do
        deleted = [pid for ids in deletes.values() for pid in ids]
        done |= set(deleted) - {row.id for row in engine.retrieve(collection, deleted)} if deleted else set()
        pending = {pid: image for pid, image in pending.items() if pid not in done}
        if not pending:
            return round_number
        log.info(CHANGED_MEANWHILE, len(pending))
    raise StoreConflict(f"{len(pending)} point(s) kept changing for {MAX_WRITE_ROUNDS} rounds")


def modify_points(
    engine: Engine, collection: str, where: PointFilter, change: Callable[[ImagePoint], ImagePoint | None]
) -> int:
    """Apply ``change`` to every point ``where`` matches, each write or delete conditional on the revision
    read (as :func:`write_images`); returns the points changed or deleted."""
    done, offset = 0, None
    while True:
        rows, offset = engine.scroll(collection, where, limit=256, offset=offset)
        for row in rows:
            done += _modify_one(engine, collection, row.id, change)
        if offset is None:
            return done


def _modify_one(engine: Engine, collection: str, pid: str, change: Callable[[ImagePoint], ImagePoint | None]) -> int:
    for _ in range(MAX_WRITE_ROUNDS):
        found = engine.retrieve(collection, [pid], vectors=True)
        if not found:
            return 0
        (row,) = found
        expected = row.payload.get(REVISION_FIELD) or None
        before = ImagePoint.from_payload(row.payload)
        after = change(before)
        if after is None:
            engine.delete_if(collection, [pid], expected)
            if not engine.retrieve(collection, [pid]):
                return 1
        elif after == before:
            return 0
        else:
            revision = uuid.uuid4().hex
            payload = after.model_copy(update={REVISION_FIELD: revision}).to_payload()
            engine.update_if(collection, [Row(id=pid, payload=payload, vector=row.vector)], expected)
            if _settled(engine, collection, [pid], revision):
                return 1
        log.info(CHANGED_MEANWHILE, 1)
    raise StoreConflict(f"point {pid} kept changing for {MAX_WRITE_ROUNDS} rounds")
