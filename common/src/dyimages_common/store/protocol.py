"""The image index as every caller sees it: one Protocol, whatever engine holds the vectors.

The app, the CLI, the indexer, the benchmarks and the test helpers type against :class:`ImageStore` and
get one from :func:`dyimages_common.store.factory.open_store`. Names (``QDRANT_COLLECTION`` and the one a
reindex builds under) are moved with :meth:`ImageStore.rename`, never with an engine's own alias objects.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np

from dyimages_common.store.points import ImagePoint
from dyimages_common.store.types import EVERYTHING, CollectionModel, Found, ImageVector, Order, PointFilter


class ImageStore(Protocol):
    name: str  # QDRANT_COLLECTION: the name searches read

    # -- which collection -----------------------------------------------------------------------------
    def names(self) -> dict[str, str]:
        """name -> collection, for every name."""
        ...

    def serving(self) -> str | None:
        """The collection searches read, or None when nothing is indexed."""
        ...

    def collection_model(self, collection: str | None = None) -> CollectionModel | None: ...

    # -- reading --------------------------------------------------------------------------------------
    def count(self, collection: str | None = None) -> int | None: ...

    def facets(self, key: str, limit: int = 50) -> list[str]: ...

    def point(self, sha256: str, collection: str | None = None) -> ImagePoint | None: ...

    def held(self, sha256s: Sequence[str], collection: str | None = None) -> set[str]:
        """Which of these images have a point in ``collection`` (the indexer embeds only the others)."""
        ...

    def vector_of(self, sha256: str) -> np.ndarray | None: ...

    def points(
        self, collection: str | None = None, batch: int = 1000, where: PointFilter = EVERYTHING
    ) -> Iterator[tuple[str, ImagePoint]]: ...

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
    ) -> list[Found]: ...

    def browse(
        self, where: PointFilter = EVERYTHING, *, order: Order, limit: int = 10, offset: int = 0
    ) -> list[Found]: ...

    # -- writing --------------------------------------------------------------------------------------
    def write(self, collection: str, images: Sequence[ImageVector], *, model: str) -> int:
        """The conditional write (no URL lost to a concurrent writer); returns the rounds it took."""
        ...

    def modify(
        self,
        where: PointFilter,
        change: Callable[[ImagePoint], ImagePoint | None],
        collection: str | None = None,
    ) -> int:
        """Apply ``change`` to every point ``where`` matches, conditionally as :meth:`write` does: its
        result is written back, or, when it returns None (no source left), the point is deleted. Returns
        the points changed or deleted."""
        ...

    def delete(self, ids: Sequence[str], collection: str | None = None) -> None: ...

    def settle(self) -> bool:
        """Call when the writer is idle after a burst: upkeep that pays now; True when some was done."""
        ...

    # -- collections and names ------------------------------------------------------------------------
    def create_collection(self, name: str, *, dim: int, model: str, pretrained: str | None) -> None: ...

    def ensure_indexes(self, name: str) -> list[str]: ...

    def delete_collection(self, name: str) -> bool: ...

    def rename(self, changes: Mapping[str, str | None]) -> None:
        """Point each name at its collection (None removes the name), all at once."""
        ...

    def close(self) -> None: ...
