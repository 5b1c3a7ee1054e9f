"""The store seam: :class:`ImageIndex` owns every vector-store call the app and the indexer make.

Callers speak in :class:`~dyimages_common.points.ImagePoint`, :class:`~dyimages_common.index_query.PointFilter`
and numpy vectors; failures arrive classified once (:mod:`dyimages_common.store_errors`). The index a
person searches is ``QDRANT_COLLECTION``, an alias; building the next collection and swapping the alias
live in :mod:`dyimages_common.index_builds`. Blocking calls: the indexer runs them on a thread of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np
from qdrant_client import QdrantClient, models

from dyimages_common import qdrant
from dyimages_common.index_query import (
    FUSION_DEPTH,
    Found,
    Order,
    PointFilter,
    by_date,
    date_order,
    to_filter,
    word_prefetches,
)
from dyimages_common.point_writes import ImageVector, write_images
from dyimages_common.points import ImagePoint, point_id
from dyimages_common.settings import QdrantSettings
from dyimages_common.store_errors import CollectionMismatchError, CollectionMissing, StoreUnavailable, classify

T = TypeVar("T")
EVERYTHING = PointFilter()


class ImageIndex:
    """One named index (``QDRANT_COLLECTION``) in one Qdrant (server or embedded folder)."""

    def __init__(self, client: QdrantClient, name: str, where: str = "") -> None:
        self._client, self.name, self._where = client, name, where
        self._models: dict[str, qdrant.CollectionModel] = {}  # collection -> its model (never changes)

    @classmethod
    def connect(cls, settings: QdrantSettings) -> ImageIndex:
        """Open the store; StoreInUse when the embedded folder is held, StoreUnavailable when unreachable."""
        where = str(settings.qdrant_path or settings.qdrant_url or f"{settings.qdrant_host}:{settings.qdrant_port}")
        try:
            client = qdrant.connect_qdrant(settings)
        except Exception as exc:
            raise classify(exc, where) from exc
        return cls(client, settings.qdrant_collection, where)

    def close(self) -> None:
        self._client.close()

    def _call(self, call: Callable[[], T]) -> T:
        try:
            return call()
        except Exception as exc:
            explained = classify(exc, self._where)
            if explained is exc:
                raise
            raise explained from exc

    # -- which collection ----------------------------------------------------------------------------

    def aliases(self) -> dict[str, str]:
        return self._call(lambda: qdrant.aliases(self._client))

    def serving(self) -> str | None:
        """The collection searches read: the alias's, a collection really named so (made before aliases), or None."""
        target = self.aliases().get(self.name)
        if target is not None:
            return target
        return self.name if self._call(lambda: self._client.collection_exists(self.name)) else None

    def collection_model(self, collection: str | None = None) -> qdrant.CollectionModel | None:
        """What made the vectors of ``collection`` (default: the serving one); None when there is none."""
        name = collection or self.serving()
        if name is None:
            return None
        if name not in self._models:
            found = self._call(lambda: qdrant.collection_model(self._client, name))
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
        return int(self._call(lambda: self._client.count(name, exact=True)).count)

    def facets(self, key: str, limit: int = 50) -> list[str]:
        """Distinct values of a keyword payload field, most frequent first ([] without a collection)."""
        if self.serving() is None:
            return []
        response = self._call(lambda: self._client.facet(self.name, key=key, limit=limit, exact=False))
        return [str(hit.value) for hit in response.hits]

    def point(self, sha256: str, collection: str | None = None) -> ImagePoint | None:
        records = self._call(lambda: self._client.retrieve(collection or self.name, ids=[point_id(sha256)]))
        return ImagePoint.from_payload(records[0].payload) if records else None

    def vector_of(self, sha256: str) -> np.ndarray | None:
        """The stored vector of an image ("more like this"), or None when it is not indexed."""
        records = self._searching(lambda: self._client.retrieve(self.name, ids=[point_id(sha256)], with_vectors=True))
        if not records or records[0].vector is None:
            return None
        return np.asarray(records[0].vector, dtype=np.float32)

    def points(self, collection: str | None = None, batch: int = 1000) -> Iterator[tuple[str, ImagePoint]]:
        """(id, point) of every point, in no particular order."""
        name, offset = collection or self.name, None
        while True:
            records, offset = self._call(
                lambda start=offset: self._client.scroll(name, limit=batch, offset=start, with_vectors=False)
            )
            for record in records:
                yield str(record.id), ImagePoint.from_payload(record.payload)
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
        ask = {"limit": depth, "offset": 0} if dated else {"limit": limit, "offset": offset}
        if words:
            request: dict[str, Any] = {
                "prefetch": word_prefetches(vector, where, min_score, words, depth),
                "query": models.FusionQuery(fusion=models.Fusion.RRF),
            }
        else:
            request = {"query": vector.tolist(), "query_filter": to_filter(where), "score_threshold": min_score}
        response = self._searching(
            lambda: self._client.query_points(
                self.name, **request, **ask, with_payload=True, with_vectors=with_vectors
            ),
            vector_size=len(vector),
        )
        found = [self._found(point, point.score) for point in response.points]
        return by_date(found, order)[offset : offset + limit] if dated else found

    def browse(self, where: PointFilter = EVERYTHING, *, order: Order, limit: int = 10, offset: int = 0) -> list[Found]:
        """Points without a query, by date (newest or oldest first) through the ``date`` payload index."""
        if order == "relevance":
            raise ValueError("browsing without a query needs a date order")
        records, _ = self._searching(
            lambda: self._client.scroll(
                self.name,
                scroll_filter=to_filter(where),
                order_by=date_order(order),
                limit=offset + limit,
                with_payload=True,
            )
        )
        return [self._found(record, 0.0) for record in records[offset:]]

    @staticmethod
    def _found(record: Any, score: float) -> Found:
        vector = np.asarray(record.vector, dtype=np.float32) if record.vector is not None else None
        return Found(
            id=str(record.id), score=float(score), point=ImagePoint.from_payload(record.payload), vector=vector
        )

    def _searching(self, call: Callable[[], T], vector_size: int | None = None) -> T:
        """Run a search call; on failure say what it means, asked only then (one round trip less per query):
        no collection yet, a collection of another vector size, Qdrant down, or the error itself."""
        try:
            return self._call(call)
        except (StoreUnavailable, CollectionMissing, ValueError) as exc:
            found = self.collection_model()
            if found is None:
                raise CollectionMissing(f"collection {self.name!r} does not exist yet") from exc
            if vector_size is not None and found.dim != vector_size:
                raise CollectionMismatchError(
                    f"the index holds {found.dim}-dimensional vectors of {found.model}, but the embedding "
                    f"service makes {vector_size}-dimensional ones. {qdrant.REINDEX_HINT}"
                ) from exc
            raise

    # -- writing -------------------------------------------------------------------------------------

    def delete(self, ids: Sequence[str]) -> None:
        if ids:
            self._call(lambda: self._client.delete(self.name, models.PointIdsList(points=list(ids)), wait=True))

    def write(self, collection: str, images: Sequence[ImageVector], *, model: str) -> int:
        """The conditional write (:mod:`dyimages_common.point_writes`); returns the rounds it took."""
        return self._call(lambda: write_images(self._client, collection, images, model=model))

    def create_collection(self, name: str, *, dim: int, model: str, pretrained: str | None) -> None:
        self._call(lambda: qdrant.create_collection(self._client, name, dim=dim, model=model, pretrained=pretrained))

    def ensure_indexes(self, name: str) -> list[str]:
        """The point model's payload indexes on ``name``, created where missing; returns those created."""
        return self._call(lambda: qdrant.ensure_payload_indexes(self._client, name))

    def delete_collection(self, name: str) -> bool:
        self._models.pop(name, None)
        return bool(self._call(lambda: self._client.delete_collection(name)))

    def change_aliases(self, operations: Sequence[Any]) -> None:
        """Apply alias operations in one call: Qdrant applies them together (the atomic swap)."""
        self._call(lambda: self._client.update_collection_aliases(change_aliases_operations=list(operations)))
