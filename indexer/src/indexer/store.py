"""The indexer's side of the store seam: :class:`~dyimages_common.image_index.ImageIndex` on a thread.

Each batch goes to every write target (:func:`dyimages_common.index_builds.write_targets`): the serving
collection, and the one ``dyimages reindex`` is building when there is one, each when it holds this
model's vectors. The write itself is the seam's conditional write (:mod:`dyimages_common.point_writes`),
so concurrent replicas never lose a URL.

The store client is blocking: :class:`Store` runs every call on one dedicated thread, which keeps the
event loop (and the RabbitMQ heartbeats) free and serialises this process's own writes.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dyimages_common import index_builds
from dyimages_common.image_index import ImageIndex
from dyimages_common.point_writes import ImageVector
from dyimages_common.settings import QdrantSettings
from dyimages_common.store_errors import CollectionMismatchError, StoreConflict, StoreInUse, StoreUnavailable
from indexer.embedder import ModelChanged

__all__ = ["ImageVector", "Store", "StoreConflict", "StoreOpenError", "StoreUnavailable"]

log = logging.getLogger(__name__)

T = TypeVar("T")


class StoreOpenError(RuntimeError):
    """The store cannot be opened at all with these settings (embedded folder held by another process)."""


class Store:
    """The image index on its own thread; async methods for the event loop."""

    def __init__(self, settings: QdrantSettings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant")
        self._index: ImageIndex | None = None
        self._identity: dict[str, object] = {}

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    @property
    def index(self) -> ImageIndex:
        if self._index is None:
            raise RuntimeError("the store is not open")
        return self._index

    async def open(self, *, dim: int, model: str, pretrained: str) -> bool:
        """Connect and make sure there is a collection for this model; True when this call made one.

        Raises CollectionMismatchError when neither the serving collection nor one being built is this model's.
        """
        if self._index is None:
            try:
                self._index = await self._call(lambda: ImageIndex.connect(self._settings))
            except StoreInUse as exc:
                raise StoreOpenError(f"cannot open Qdrant (QDRANT_PATH={self._settings.qdrant_path}): {exc}") from exc
        self._identity = {"dim": dim, "model": model, "pretrained": pretrained}
        created = await self._call(
            lambda: index_builds.ensure_serving(self.index, dim=dim, model=model, pretrained=pretrained)
        )
        await self._call(self._targets)
        return created

    def _targets(self) -> list[str]:
        return index_builds.write_targets(self.index, **self._identity)  # type: ignore[arg-type]

    def _write(self, images: Sequence[ImageVector], model: str) -> int:
        return max(self.index.write(target, images, model=model) for target in self._targets())

    async def write(self, images: Sequence[ImageVector], *, model: str) -> int:
        """Write to every target; returns the most rounds any target took.

        ModelChanged (the indexer stops, exit 4, the batch back in the queue) when no collection is this
        model's any more: a reindex for another model swapped the alias while this indexer ran.
        """
        try:
            return await self._call(lambda: self._write(images, model))
        except CollectionMismatchError as exc:
            raise ModelChanged(f"the index changed under this indexer: {exc}") from exc

    async def close(self) -> None:
        if self._index is not None:
            index, self._index = self._index, None
            await self._call(index.close)
        self._executor.shutdown(wait=True)
