"""What one engine folder (``store/qdrant``, ``store/edge``) provides: collections, names, points, in its
own client's terms inside and in :mod:`dyimages_common.store.types` terms at this boundary.

:class:`~dyimages_common.store.index.ImageIndex` holds the logic once (the conditional write, date order,
the search's fallbacks); an engine is the thin translation below it. A *collection* is one set of points of
one model; a *name* (``QDRANT_COLLECTION``, ``<name>__building``) points at a collection and is moved by
:meth:`Engine.rename`, which applies all its changes at once or none. Every method that takes a
``collection`` also takes a name and reads the collection it points at (a missing one is
:class:`~dyimages_common.store.errors.CollectionMissing`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np

from dyimages_common.store.types import CollectionModel, Order, PointFilter, Row


class Engine(Protocol):
    where: str  # what a person would call this store in a message (folder or URL)

    # -- names and collections ------------------------------------------------------------------------
    def names(self) -> dict[str, str]:
        """name -> collection, for every name."""
        ...

    def rename(self, changes: Mapping[str, str | None]) -> None:
        """Point each name at its collection (None: remove the name), all at once."""
        ...

    def exists(self, collection: str) -> bool: ...

    def collection_model(self, collection: str) -> CollectionModel | None: ...

    def create_collection(self, collection: str, model: CollectionModel) -> None:
        """A new collection for ``model``'s vectors (cosine), with every payload index of the point model."""
        ...

    def ensure_indexes(self, collection: str) -> list[str]:
        """Create the point model's payload indexes ``collection`` lacks; returns the fields indexed now."""
        ...

    def delete_collection(self, collection: str) -> bool: ...

    # -- reading --------------------------------------------------------------------------------------
    def count(self, collection: str) -> int: ...

    def facet(self, collection: str, key: str, limit: int) -> list[str]: ...

    def retrieve(self, collection: str, ids: Sequence[str], *, vectors: bool = False) -> list[Row]: ...

    def scroll(
        self, collection: str, where: PointFilter, *, limit: int, offset: str | None
    ) -> tuple[list[Row], str | None]:
        """One page of the points ``where`` matches, in id order; the offset of the next page or None."""
        ...

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
        """The best points for ``vector``; with ``words``, the reciprocal-rank fusion (k=2) of the vector
        ranking and one ranking per word of the points whose ``words`` field contains it (``depth`` each)."""
        ...

    def browse(self, collection: str, where: PointFilter, *, order: Order, limit: int) -> list[Row]:
        """The first ``limit`` points by ``date`` (newest or oldest first), through the date index."""
        ...

    # -- writing (each call waits until the engine has applied it) -------------------------------------
    def insert_new(self, collection: str, rows: Sequence[Row]) -> None:
        """Insert each row whose id is absent; a row whose id exists is left as it is."""
        ...

    def update_if(self, collection: str, rows: Sequence[Row], revision: str | None) -> None:
        """Replace each row whose stored ``revision`` is still ``revision`` (None: has none); others stay."""
        ...

    def delete(self, collection: str, ids: Sequence[str]) -> None: ...

    def delete_if(self, collection: str, ids: Sequence[str], revision: str | None) -> None:
        """Delete each of ``ids`` whose stored ``revision`` is still ``revision``."""
        ...

    def settle(self) -> bool:
        """The writer is idle: do the upkeep that pays now (Edge builds its HNSW index); True when it did."""
        ...

    def classify(self, exc: BaseException) -> BaseException:
        """The :mod:`dyimages_common.store.errors` error for a failed call, or ``exc`` itself (a bug)."""
        ...

    def close(self) -> None: ...
