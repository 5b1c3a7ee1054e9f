"""The one implementation of :class:`~dyimages_common.store.protocol.ImageStore`, over any engine.

Callers speak in :class:`~dyimages_common.store.points.ImagePoint`, :class:`~dyimages_common.store.types.PointFilter`
and numpy vectors; the engine below (:mod:`dyimages_common.store.engine`) speaks its client's language, and
its failures arrive classified once (:mod:`dyimages_common.store.errors`). The logic every engine shares
lives here: which collection serves, the conditional write, date order over the best matches, and what a
failed search means. Blocking calls: the indexer runs them on a thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import numpy as np

from dyimages_common.store.engine import Engine
from dyimages_common.store.errors import REINDEX_HINT, CollectionMismatchError, CollectionMissing, StoreUnavailable
from dyimages_common.store.points import ImagePoint, point_id
from dyimages_common.store.types import (
    EVERYTHING,
    FUSION_DEPTH,
    CollectionModel,
    Found,
    ImageVector,
    Order,
    PointFilter,
    by_date,
)
from dyimages_common.store.writes import modify_points, write_images

T = TypeVar("T")


class ImageIndex:
    """One named index (``QDRANT_COLLECTION``) in one engine."""

    def __init__(self, engine: Engine, name: str) -> None:
        self._engine, self.name = engine, name
        self._models: dict[str, CollectionModel] = {}  # collection -> its model (never changes)

    @property
    def engine(self) -> Engine:
        return self._engine

    def close(self) -> None:
        self._engine.close()

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:
            explained = self._engine.classify(exc)
            if explained is exc:
                raise
            raise explained from exc

    # -- which collection ----------------------------------------------------------------------------

    def names(self) -> dict[str, str]:
        return self._call(self._engine.names)

    def serving(self) -> str | None:
        """The collection searches read: the name's, a collection really named so (made before names), or None."""
        target = self.names().get(self.name)
        if target is not None:
            return target
        return self.name if self._call(lambda: self._engine.exists(self.name)) else None

    def collection_model(self, collection: str | None = None) -> CollectionModel | None:
        """What made the vectors of ``collection`` (default: the serving one); None when there is none."""
        name = collection or self.serving()
        if name is None:
            return None
        if name not in self._models:
            found = self._call(lambda: self._engine.collection_model(name))
            if found is None:
                return None
            self._models[name] = found
        return self._models[name]

    # -- reading -------------------------------------------------------------------------------------

    def count(self, collection: str | None = None) -> int | None:
        """Points in the collection (default: the serving one), or None when there is none."""
        name = collection or self.serving()
        if name is None:
            return None
        return self._call(lambda: self._engine.count(name))

    def facets(self, key: str, limit: int = 50) -> list[str]:
        """Distinct values of a keyword payload field, most frequent first ([] without a collection)."""
        if self.serving() is None:
            return []
        return self._call(lambda: self._engine.facet(self.name, key, limit))

    def point(self, sha256: str, collection: str | None = None) -> ImagePoint | None:
        name = collection or self.name
        rows = self._call(lambda: self._engine.retrieve(name, [point_id(sha256)]))
        return ImagePoint.from_payload(rows[0].payload) if rows else None

    def held(self, sha256s: Sequence[str], collection: str | None = None) -> set[str]:
        """Which of these images have a point in ``collection`` (default: the serving one)."""
        name = collection or self.name
        ids = {point_id(sha256): sha256 for sha256 in sha256s}
        rows = self._call(lambda: self._engine.retrieve(name, list(ids))) if ids else []
        return {ids[row.id] for row in rows}

    def vector_of(self, sha256: str) -> np.ndarray | None:
        """The stored vector of an image ("more like this"), or None when it is not indexed."""
        rows = self._searching(lambda name: self._engine.retrieve(name, [point_id(sha256)], vectors=True))
        return rows[0].vector if rows else None

    def points(
        self, collection: str | None = None, batch: int = 1000, where: PointFilter = EVERYTHING
    ) -> Iterator[tuple[str, ImagePoint]]:
        """(id, point) of every point ``where`` matches, in no particular order."""
        name, offset = collection or self.name, None
        while True:
            rows, offset = self._call(lambda start=offset: self._engine.scroll(name, where, limit=batch, offset=start))
            for row in rows:
                yield row.id, ImagePoint.from_payload(row.payload)
            if offset is None:
                return

    def search(
        self,
        vector: np.ndarray,
        where: PointFilter = EVERYTHING,
        *,
        min_score: float | None = None,
        limit: int = 10,
        offset: int = 0,
        words: Sequence[str] = (),
        order: Order = "relevance",
        with_vectors: bool = False,
    ) -> list[Found]:
        """The best points for ``vector``, none below ``min_score``. With ``words``, the reciprocal-rank
        fusion of the vector ranking and, per word, the ranking of the points whose ``words`` contain it
        (``score`` is then the fused score). With a date ``order``, the first :data:`FUSION_DEPTH` results
        above the minimum score, ordered by date, then paged."""
        dated = order != "relevance"
        depth = max(FUSION_DEPTH, offset + limit)
        ask_limit, ask_offset = (depth, 0) if dated else (limit, offset)
        rows = self._searching(
            lambda serving: self._engine.query(
                serving,
                np.asarray(vector, dtype=np.float32),
                where,
                min_score=min_score,
                limit=ask_limit,
                offset=ask_offset,
                words=list(words),
                depth=depth,
                vectors=with_vectors,
            ),
            vector_size=len(vector),
        )
        found = [row.found() for row in rows]
        return by_date(found, order)[offset : offset + limit] if dated else found

    def browse(self, where: PointFilter = EVERYTHING, *, order: Order, limit: int = 10, offset: int = 0) -> list[Found]:
        """Points without a query, by date (newest or oldest first) through the ``date`` payload index."""
        if order == "relevance":
            raise ValueError("browsing without a query needs a date order")
        rows = self._searching(lambda serving: self._engine.browse(serving, where, order=order, limit=offset + limit))
        return [row.found() for row in rows[offset:]]

    def _searching(self, call: Callable[[str], T], vector_size: int | None = None) -> T:
        """Run a search on the index's name; on failure say what it means, asked only then (one round trip
        less per query): no collection yet, a collection of another vector size, the store down, or the
        error itself."""
        try:
            return self._call(lambda: call(self.name))
        except (StoreUnavailable, CollectionMissing, ValueError) as exc:
            found = self.collection_model()
            if found is None:
                raise CollectionMissing(f"collection {self.name!r} does not exist yet") from exc
            if vector_size is not None and found.dim != vector_size:
                raise CollectionMismatchError(
                    f"the index holds {found.dim}-dimensional vectors of {found.model}, but the embedding "
                    f"service makes {vector_size}-dimensional ones. {REINDEX_HINT}"
                ) from exc
            raise

    # -- writing -------------------------------------------------------------------------------------

    def delete(self, ids: Sequence[str], collection: str | None = None) -> None:
        if ids:
            self._call(lambda: self._engine.delete(collection or self.name, list(ids)))

    def write(self, collection: str, images: Sequence[ImageVector], *, model: str) -> int:
        """The conditional write (:mod:`dyimages_common.store.writes`); returns the rounds it took."""
        return self._call(lambda: write_images(self._engine, collection, images, model=model))

    def modify(
        self,
        where: PointFilter,
        change: Callable[[ImagePoint], ImagePoint | None],
        collection: str | None = None,
    ) -> int:
        return self._call(lambda: modify_points(self._engine, collection or self.name, where, change))

    def settle(self) -> bool:
        return self._call(self._engine.settle)

    def create_collection(self, name: str, *, dim: int, model: str, pretrained: str | None) -> None:
        made = CollectionModel(name=name, model=model, dim=dim, weights=pretrained)
        self._call(lambda: self._engine.create_collection(name, made))

    def ensure_indexes(self, name: str) -> list[str]:
        """The point model's payload indexes on ``name``, created where missing; returns those created."""
        return self._call(lambda: self._engine.ensure_indexes(name))

    def delete_collection(self, name: str) -> bool:
        self._models.pop(name, None)
        return bool(self._call(lambda: self._engine.delete_collection(name)))

    def rename(self, changes: Mapping[str, str | None]) -> None:
        """Point each name at its collection (None removes it) in one step: the reindex's atomic swap."""
        self._call(lambda: self._engine.rename(dict(changes)))
