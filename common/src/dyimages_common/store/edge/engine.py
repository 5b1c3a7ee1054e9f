"""The Qdrant Edge engine: each collection one Edge shard in the QDRANT_PATH folder (:mod:`.folder`).

Qdrant's own segments, HNSW graph, payload indexes and write-ahead log run in this process: a write is
in the WAL when :meth:`EdgeEngine.insert_new` or :meth:`EdgeEngine.update_if` returns, so a process killed
after that loses nothing. Conditional writes are Edge's conditional upserts (``UpdateMode`` and a
``condition`` filter), applied atomically per point as the server applies them. New points go to an
appendable segment that is searched exhaustively until :meth:`EdgeEngine.settle` runs the optimizers
(HNSW and payload indexes on the grown segments), which Edge does only when asked.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import qdrant_edge as edge

from dyimages_common.store.edge.folder import EdgeFolder
from dyimages_common.store.edge.query import (
    PAYLOAD_INDEXES,
    RRF,
    as_point,
    as_row,
    date_order,
    nearest,
    revision_filter,
    to_filter,
    word_prefetches,
)
from dyimages_common.store.errors import KNOWN, CollectionMissing, StoreInUse, StoreUnavailable
from dyimages_common.store.types import CollectionModel, Order, PointFilter, Row

log = logging.getLogger(__name__)


class EdgeEngine:
    """Every collection of one QDRANT_PATH folder, opened by this process alone."""

    def __init__(self, root: Path, *, int8_quantization: bool = False) -> None:
        self.where = str(root)
        self._folder = EdgeFolder(root)
        # For collections made from now on: vectors also kept as int8 in RAM, searched first, rescored with
        # the originals (what `bench vectorstore` compares as edge-sq8; no setting names it yet).
        self._quantization = (
            edge.ScalarQuantizationConfig(type=edge.ScalarType.Int8, always_ram=True) if int8_quantization else None
        )
        self._lock = threading.RLock()
        self._shards: dict[str, edge.EdgeShard] = {}
        self._names = self._folder.names()
        self._written: set[str] = set()  # collections written since the last settle

    def classify(self, exc: BaseException) -> BaseException:
        if isinstance(exc, KNOWN):
            return exc
        text = str(exc)
        if "WouldBlock" in text:
            return StoreInUse(f"the embedded Qdrant folder {self.where} is in use by another process: {text}")
        if "dimension" in text.lower():
            return ValueError(text)
        if isinstance(exc, OSError):
            return StoreUnavailable(f"the embedded Qdrant folder {self.where} cannot be used: {exc!r}")
        return exc

    def close(self) -> None:
        with self._lock:
            for shard in self._shards.values():
                shard.flush()
                shard.close()
            self._shards.clear()
            self._folder.release()

    # -- names and collections ------------------------------------------------------------------------

    def _resolve(self, name: str) -> str:
        return self._names.get(name, name)

    def _shard(self, name: str) -> edge.EdgeShard:
        collection = self._resolve(name)
        with self._lock:
            shard = self._shards.get(collection)
            if shard is None:
                if not self._folder.exists(collection):
                    raise CollectionMissing(f"collection {name!r} does not exist")
                shard = self._shards[collection] = edge.EdgeShard.load(str(self._folder.shard(collection)))
            return shard

    def names(self) -> dict[str, str]:
        return dict(self._names)

    def rename(self, changes: Mapping[str, str | None]) -> None:
        with self._lock:
            names = dict(self._names)
            for name, collection in changes.items():
                if collection is None:
                    names.pop(name, None)
                elif not self._folder.exists(collection):
                    raise CollectionMissing(f"cannot name {name!r}: collection {collection!r} does not exist")
                else:
                    names[name] = collection
            self._folder.write_names(names)  # the one atomic step
            self._names = names

    def exists(self, collection: str) -> bool:
        return self._folder.exists(collection)

    def collection_model(self, collection: str) -> CollectionModel | None:
        resolved = self._resolve(collection)
        record = self._folder.record(resolved)
        if record is None:
            return None
        dim = record.get("dim")
        return CollectionModel.from_record(resolved, record, int(dim) if dim is not None else None)

    def create_collection(self, collection: str, model: CollectionModel) -> None:
        with self._lock:
            if self._folder.exists(collection):
                raise ValueError(f"collection {collection!r} already exists")
            params = edge.EdgeVectorParams(size=model.dim or 0, distance=edge.Distance.Cosine)
            config = edge.EdgeConfig(vectors=params, quantization_config=self._quantization)
            shard = edge.EdgeShard.create(str(self._folder.shard(collection)), config)
            self._shards[collection] = shard
            for field, schema in PAYLOAD_INDEXES.items():
                shard.update(edge.UpdateOperation.create_field_index(field, schema))
            self._folder.write_record(collection, model.record())  # last: the collection exists from here on
        log.info("created collection %s (model %s, dim %s) in %s", collection, model.model, model.dim, self.where)

    def ensure_indexes(self, collection: str) -> list[str]:
        shard = self._shard(collection)
        missing = [field for field in PAYLOAD_INDEXES if field not in shard.info().payload_schema]
        for field in missing:
            shard.update(edge.UpdateOperation.create_field_index(field, PAYLOAD_INDEXES[field]))
        return missing

    def delete_collection(self, collection: str) -> bool:
        with self._lock:
            shard = self._shards.pop(collection, None)
            if shard is not None:
                shard.close()
            pointing = [name for name, target in self._names.items() if target == collection]
            if pointing:  # as Qdrant does: a collection's names go with it
                self.rename(dict.fromkeys(pointing))
            self._written.discard(collection)
            return self._folder.remove(collection)

    # -- reading --------------------------------------------------------------------------------------

    def count(self, collection: str) -> int:
        return int(self._shard(collection).count(edge.CountRequest(exact=True)))

    def facet(self, collection: str, key: str, limit: int) -> list[str]:
        response = self._shard(collection).facet(edge.FacetRequest(key=key, limit=limit, exact=False))
        return [str(hit.value) for hit in response.hits]

    def retrieve(self, collection: str, ids: Sequence[str], *, vectors: bool = False) -> list[Row]:
        records = self._shard(collection).retrieve(list(ids), with_payload=True, with_vector=vectors)
        return [as_row(record) for record in records]

    def scroll(
        self, collection: str, where: PointFilter, *, limit: int, offset: str | None
    ) -> tuple[list[Row], str | None]:
        request = edge.ScrollRequest(offset=offset, limit=limit, filter=to_filter(where), with_payload=True)
        records, following = self._shard(collection).scroll(request)
        return [as_row(r) for r in records], (str(following) if following is not None else None)

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
        values = vector.tolist()
        if words:
            request = edge.QueryRequest(
                limit=limit,
                offset=offset,
                prefetches=word_prefetches(values, where, min_score, words, depth),
                query=RRF,
                with_payload=True,
                with_vector=vectors,
            )
        else:
            request = edge.QueryRequest(
                limit=limit,
                offset=offset,
                query=nearest(values),
                filter=to_filter(where),
                score_threshold=min_score,
                with_payload=True,
                with_vector=vectors,
            )
        return [as_row(point, point.score) for point in self._shard(collection).query(request)]

    def browse(self, collection: str, where: PointFilter, *, order: Order, limit: int) -> list[Row]:
        request = edge.ScrollRequest(
            limit=limit, filter=to_filter(where), with_payload=True, order_by=date_order(order)
        )
        records, _ = self._shard(collection).scroll(request)
        return [as_row(record) for record in records]

    # -- writing --------------------------------------------------------------------------------------

    def _update(self, collection: str, operation: edge.UpdateOperation) -> None:
        self._shard(collection).update(operation)
        self._written.add(self._resolve(collection))

    def insert_new(self, collection: str, rows: Sequence[Row]) -> None:
        points = [as_point(row) for row in rows]
        self._update(collection, edge.UpdateOperation.upsert_points(points, update_mode=edge.UpdateMode.InsertOnly))

    def update_if(self, collection: str, rows: Sequence[Row], revision: str | None) -> None:
        points = [as_point(row) for row in rows]
        operation = edge.UpdateOperation.upsert_points(
            points, condition=revision_filter(revision), update_mode=edge.UpdateMode.UpdateOnly
        )
        self._update(collection, operation)

    def delete(self, collection: str, ids: Sequence[str]) -> None:
        self._update(collection, edge.UpdateOperation.delete_points(list(ids)))

    def delete_if(self, collection: str, ids: Sequence[str], revision: str | None) -> None:
        self._update(collection, edge.UpdateOperation.delete_points_by_filter(revision_filter(revision, ids)))

    def settle(self) -> bool:
        """Run Edge's optimizers on each collection written since the last call (HNSW for grown segments,
        merged small segments); True when any segment changed."""
        with self._lock:
            written, self._written = set(self._written), set()
        changed = False
        for collection in written:
            if self._folder.exists(collection):
                changed = self._shard(collection).optimize() or changed
        return changed
