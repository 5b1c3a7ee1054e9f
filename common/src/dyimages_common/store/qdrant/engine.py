"""The Qdrant engine: the server (compose's default) or qdrant-client's embedded mode, through qdrant-client.

A collection records the model (and weights) that made its vectors in its metadata; names are Qdrant
collection aliases, all changes of one :meth:`QdrantEngine.rename` in one ``update_collection_aliases``
call, which Qdrant applies together. Conditional writes are ``upsert`` with ``update_mode`` and an
``update_filter`` on the revision (server 1.17 or later).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from dyimages_common.settings import QdrantSettings
from dyimages_common.store.qdrant.connect import connect_qdrant
from dyimages_common.store.qdrant.errors import classify
from dyimages_common.store.qdrant.query import PAYLOAD_INDEXES, date_order, revision_filter, to_filter, word_prefetches
from dyimages_common.store.types import CollectionModel, Order, PointFilter, Row

log = logging.getLogger(__name__)


def _row(record: Any, score: float = 0.0) -> Row:
    vector = np.asarray(record.vector, dtype=np.float32) if record.vector is not None else None
    return Row(id=str(record.id), payload=dict(record.payload or {}), vector=vector, score=float(score))


def _struct(row: Row) -> models.PointStruct:
    vector = row.vector.tolist() if row.vector is not None else []
    return models.PointStruct(id=row.id, vector=vector, payload=row.payload)


@dataclass(frozen=True)
class Layout:
    """How a server spreads a new collection over its nodes (QDRANT_SHARD_NUMBER and the two factors):
    Qdrant's distributed mode needs them at creation; one server keeps the defaults, embedded mode ignores them."""

    shard_number: int = 1
    replication_factor: int = 1
    write_consistency_factor: int = 1


class QdrantEngine:
    """One qdrant-client: the server at QDRANT_HOST/QDRANT_URL, or embedded mode in QDRANT_PATH."""

    def __init__(self, client: QdrantClient, where: str = "", layout: Layout | None = None) -> None:
        self.client, self.where, self.layout = client, where, layout or Layout()

    @classmethod
    def connect(cls, settings: QdrantSettings) -> QdrantEngine:
        where = str(settings.qdrant_path or settings.qdrant_url or f"{settings.qdrant_host}:{settings.qdrant_port}")
        layout = Layout(
            settings.qdrant_shard_number, settings.qdrant_replication_factor, settings.qdrant_write_consistency_factor
        )
        try:
            return cls(connect_qdrant(settings), where, layout)
        except Exception as exc:
            raise classify(exc, where) from exc

    def classify(self, exc: BaseException) -> BaseException:
        return classify(exc, self.where)

    def close(self) -> None:
        self.client.close()

    # -- names and collections ------------------------------------------------------------------------

    def names(self) -> dict[str, str]:
        return {a.alias_name: a.collection_name for a in self.client.get_aliases().aliases}

    def rename(self, changes: Mapping[str, str | None]) -> None:
        known = self.names()
        operations: list[models.DeleteAliasOperation | models.CreateAliasOperation] = []
        for name, collection in changes.items():
            if name in known:
                operations.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
            if collection is not None:
                create = models.CreateAlias(collection_name=collection, alias_name=name)
                operations.append(models.CreateAliasOperation(create_alias=create))
        if operations:
            self.client.update_collection_aliases(change_aliases_operations=operations)

    def exists(self, collection: str) -> bool:
        return bool(self.client.collection_exists(collection))

    def collection_model(self, collection: str) -> CollectionModel | None:
        if not self.client.collection_exists(collection):
            return None
        config = self.client.get_collection(collection).config
        vectors = config.params.vectors
        dim = vectors.size if isinstance(vectors, models.VectorParams) else None
        return CollectionModel.from_record(collection, dict(config.metadata or {}), dim)

    def create_collection(self, collection: str, model: CollectionModel) -> None:
        params = models.VectorParams(size=model.dim or 0, distance=models.Distance.COSINE)
        self.client.create_collection(
            collection,
            vectors_config=params,
            metadata=model.record(),
            shard_number=self.layout.shard_number,
            replication_factor=self.layout.replication_factor,
            write_consistency_factor=self.layout.write_consistency_factor,
        )
        self.ensure_indexes(collection)
        log.info("created collection %s (model %s, dim %s)", collection, model.model, model.dim)

    def ensure_indexes(self, collection: str) -> list[str]:
        existing = set(self.client.get_collection(collection).payload_schema or {})
        missing = [field for field in PAYLOAD_INDEXES if field not in existing]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # embedded mode: indexes are no-ops
            for field in missing:
                self.client.create_payload_index(collection, field, field_schema=PAYLOAD_INDEXES[field])
        return missing

    def delete_collection(self, collection: str) -> bool:
        return bool(self.client.delete_collection(collection))

    # -- reading --------------------------------------------------------------------------------------

    def count(self, collection: str) -> int:
        return int(self.client.count(collection, exact=True).count)

    def facet(self, collection: str, key: str, limit: int) -> list[str]:
        response = self.client.facet(collection, key=key, limit=limit, exact=False)
        return [str(hit.value) for hit in response.hits]

    def retrieve(self, collection: str, ids: Sequence[str], *, vectors: bool = False) -> list[Row]:
        return [_row(r) for r in self.client.retrieve(collection, ids=list(ids), with_vectors=vectors)]

    def scroll(
        self, collection: str, where: PointFilter, *, limit: int, offset: str | None
    ) -> tuple[list[Row], str | None]:
        records, following = self.client.scroll(
            collection, scroll_filter=to_filter(where), limit=limit, offset=offset, with_vectors=False
        )
        return [_row(r) for r in records], (str(following) if following is not None else None)

    def query(
        self,
        collection: str,
        vector: np.ndarray,
        where: PointFilter,
        *,
        min_score: float | None,
        limit: int,
        offset: int,
        words: Sequence[str],
        depth: int,
        vectors: bool,
    ) -> list[Row]:
        if words:
            request: dict[str, Any] = {
                "prefetch": word_prefetches(vector, where, min_score, words, depth),
                "query": models.FusionQuery(fusion=models.Fusion.RRF),
            }
        else:
            request = {"query": vector.tolist(), "query_filter": to_filter(where), "score_threshold": min_score}
        response = self.client.query_points(
            collection, **request, limit=limit, offset=offset, with_payload=True, with_vectors=vectors
        )
        return [_row(point, point.score) for point in response.points]

    def browse(self, collection: str, where: PointFilter, *, order: Order, limit: int) -> list[Row]:
        records, _ = self.client.scroll(
            collection, scroll_filter=to_filter(where), order_by=date_order(order), limit=limit, with_payload=True
        )
        return [_row(record) for record in records]

    # -- writing --------------------------------------------------------------------------------------

    def insert_new(self, collection: str, rows: Sequence[Row]) -> None:
        points = [_struct(row) for row in rows]
        self.client.upsert(collection, points, wait=True, update_mode=models.UpdateMode.INSERT_ONLY)

    def update_if(self, collection: str, rows: Sequence[Row], revision: str | None) -> None:
        self.client.upsert(
            collection,
            [_struct(row) for row in rows],
            wait=True,
            update_mode=models.UpdateMode.UPDATE_ONLY,
            update_filter=revision_filter(revision),
        )

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self.client.delete(collection, models.PointIdsList(points=list(ids)), wait=True)

    def delete_if(self, collection: str, ids: Sequence[str], revision: str | None) -> None:
        selector = models.FilterSelector(filter=revision_filter(revision, ids))
        self.client.delete(collection, selector, wait=True)

    def settle(self) -> bool:
        return False  # the server optimizes by itself; embedded mode has nothing to optimize
