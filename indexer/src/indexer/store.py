"""The indexer's side of the store seam: :class:`~dyimages_common.store.index.ImageStore` on a thread.

Each batch goes to every write target (:func:`dyimages_common.store.builds.write_targets`): the serving
collection, and the one ``dyimages reindex`` is building when there is one, each when it holds this
model's vectors. The write itself is the seam's conditional write (:mod:`dyimages_common.store.writes`),
so concurrent replicas never lose a URL.

The store client is blocking: :class:`Store` runs every call on one dedicated thread, which keeps the
event loop (and the RabbitMQ heartbeats) free and serialises this process's own writes. After a burst of
writes, once no batch has been written for :data:`SETTLE_AFTER_S`, the store is settled
(:meth:`ImageStore.settle`: Qdrant Edge builds its HNSW index for the new points; bench/RESULTS.md has
what that buys), and once more before an ``--exit-when-idle`` run exits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from dyimages_common.settings import QdrantSettings
from dyimages_common.store import builds as index_builds
from dyimages_common.store.errors import (
    CollectionMismatchError,
    StoreConflict,
    StoreFolderError,
    StoreInUse,
    StoreUnavailable,
)
from dyimages_common.store.factory import open_store
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import ImageVector
from indexer.embedder import ModelChanged

__all__ = ["ImageVector", "Store", "StoreConflict", "StoreOpenError", "StoreUnavailable"]

log = logging.getLogger(__name__)

T = TypeVar("T")

SETTLE_AFTER_S = 10.0  # quiet time after the last write before the store is settled


class StoreOpenError(RuntimeError):
    """The store cannot be opened at all with these settings (embedded folder held by another process)."""


class Store:
    """The image index on its own thread; async methods for the event loop."""

    def __init__(self, settings: QdrantSettings) -> None:
        self._settings = settings
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qdrant")
        self._index: ImageStore | None = None
        self._identity: dict[str, object] = {}
        self._last_write: float | None = None  # monotonic time of the last write not yet settled

    async def _call(self, function: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function)

    @property
    def index(self) -> ImageStore:
        if self._index is None:
            raise RuntimeError("the store is not open")
        return self._index

    async def open(self, *, dim: int, model: str, pretrained: str) -> bool:
        """Connect and make sure there is a collection for this model; True when this call made one.

        Raises CollectionMismatchError when neither the serving collection nor one being built is this model's.
        """
        if self._index is None:
            try:
                self._index = await self._call(lambda: open_store(self._settings))
            except (StoreInUse, StoreFolderError) as exc:
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

    def _held_everywhere(self, sha256s: Sequence[str]) -> set[str]:
        return set.intersection(*(self.index.held(sha256s, target) for target in self._targets()))

    async def held_everywhere(self, sha256s: Sequence[str]) -> set[str]:
        """The images with a point in every write target: a library photo among them needs no vector."""
        try:
            return await self._call(lambda: self._held_everywhere(sha256s))
        except CollectionMismatchError as exc:
            raise ModelChanged(f"the index changed under this indexer: {exc}") from exc

    async def write(self, images: Sequence[ImageVector], *, model: str) -> int:
        """Write to every target; returns the most rounds any target took.

        ModelChanged (the indexer stops, exit 4, the batch back in the queue) when no collection is this
        model's any more: a reindex for another model swapped the alias while this indexer ran.
        """
        try:
            rounds = await self._call(lambda: self._write(images, model))
        except CollectionMismatchError as exc:
            raise ModelChanged(f"the index changed under this indexer: {exc}") from exc
        self._last_write = time.monotonic()
        return rounds

    async def settle(self) -> bool:
        """Settle the store now (see the module docstring); True when it changed something."""
        self._last_write = None
        if self._index is None:
            return False
        started = time.monotonic()
        changed = await self._call(self.index.settle)
        if changed:
            log.info("settled the store after a burst of writes in %.1f s", time.monotonic() - started)
        return changed

    async def settle_when_idle(self, quiet_s: float = SETTLE_AFTER_S, check_s: float = 1.0) -> None:
        """Forever: settle once no batch has been written for ``quiet_s`` since the last write."""
        while True:
            await asyncio.sleep(check_s)
            if self._last_write is not None and time.monotonic() - self._last_write >= quiet_s:
                await self.settle()

    async def close(self, *, settle: bool = False) -> None:
        """Close the store; with ``settle``, settle the last writes first (an idle run that exits)."""
        if self._index is not None:
            if settle and self._last_write is not None:
                await self.settle()
            index, self._index = self._index, None
            await self._call(index.close)
        self._executor.shutdown(wait=True)
