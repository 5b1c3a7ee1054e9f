"""One batch, start to end: parse the messages, embed their images, write the vectors, dead-letter
what can never be indexed, and acknowledge a message only once its image is written or it is
dead-lettered. A library photo the embedding service refuses is not dead-lettered: its reason goes
back to the library's state, by path (:mod:`indexer.library_refusals`).

A batch is one ``/embed`` request (split by :class:`~indexer.embedder.BatchEmbedder` when one image
is at fault) and one conditional write to the store, retried while the store is away or other
writers keep changing the same points. A vector of another size than the collection's stops the
indexer (:class:`~indexer.embedder.ModelChanged`): vectors of two models are never mixed.
"""

from __future__ import annotations

import logging
import time

from aio_pika.abc import AbstractIncomingMessage

from dyimages_common.embeddings.client import ItemFailure, ModelInfo
from dyimages_common.library.refusal import LibraryRefusal
from dyimages_common.reasons import Reason
from indexer import metrics
from indexer.batch import Image, parse_batch
from indexer.dead_letters import DeadLetters
from indexer.embedder import BatchEmbedder, ModelChanged
from indexer.inbox import Inbox
from indexer.library_refusals import LibraryRefusals
from indexer.outages import retry_until_done
from indexer.progress import Progress
from indexer.settings import IndexerSettings
from indexer.store import ImageVector, Store, StoreConflict, StoreUnavailable

log = logging.getLogger(__name__)

# A message that can never be indexed: its position in the batch, the reason and the detail.
Unindexable = tuple[int, Reason, str]


class BatchIndexer:
    """Indexes batches of messages for the collection of ``model`` (learned at the start)."""

    def __init__(
        self,
        settings: IndexerSettings,
        *,
        model: ModelInfo,
        embedder: BatchEmbedder,
        store: Store,
        inbox: Inbox,
        dead_letters: DeadLetters,
        library_refusals: LibraryRefusals,
        progress: Progress,
    ) -> None:
        self.settings = settings
        self.model = model
        self._embedder = embedder
        self._store = store
        self._inbox = inbox
        self._dead_letters = dead_letters
        self._library_refusals = library_refusals
        self._progress = progress

    async def index(self, batch: list[AbstractIncomingMessage]) -> None:
        """Index one batch; raises ModelChanged (stop) or anything unexpected (the caller returns the batch)."""
        metrics.BATCH_SIZE.observe(len(batch))
        images, refusals = parse_batch([message.body for message in batch])
        unindexable: list[Unindexable] = [(r.index, r.reason, r.detail) for r in refusals]
        written: list[Image] = []
        # A library photo whose point every target holds is not embedded again (a rename, a copy, a
        # deletion): only its paths change, and a point left with no source is removed.
        keep_vector = await self._held_everywhere(images)
        to_write = [ImageVector(image.sha256, None, image.events) for image in images if image.sha256 in keep_vector]
        written += [image for image in images if image.sha256 in keep_vector]
        to_embed = [image for image in images if image.sha256 not in keep_vector]
        refused: list[tuple[Image, ItemFailure]] = []
        if to_embed:
            vectors, failed = await self._embed(to_embed)
            for image, failure in failed:
                if image.from_library_only and image.library_paths:
                    refused.append((image, failure))  # its reason belongs in the library's state, by path
                else:
                    unindexable += [(index, failure.reason, failure.detail) for index in image.indices]
            to_write += vectors
            written += [image for image in to_embed if image.sha256 in {v.sha256 for v in vectors}]
        if to_write:
            await self._write(to_write)
        for image, failure in refused:
            refusal = LibraryRefusal.of(image.sha256, image.library_paths, failure.reason, failure.detail)
            await self._library_refusals.send([batch[index] for index in image.indices], refusal)
        for index, reason, detail in unindexable:
            await self._dead_letters.send(batch[index], reason, detail)
            self._progress.dead_lettered += 1
        indexed = [batch[index] for image in written for index in image.indices]
        for message in indexed:
            await self._inbox.settle(message)
        metrics.INDEXED.inc(len(indexed))
        self._progress.indexed += len(indexed)
        log.debug("batch: %d indexed, %d dead-lettered", len(indexed), len(unindexable))

    async def _held_everywhere(self, images: list[Image]) -> set[str]:
        """The library-only images that need no vector: no path left, or a point in every write target."""
        library = [image for image in images if image.from_library_only]
        gone = {image.sha256 for image in library if not image.library_paths}
        asked = [image.sha256 for image in library if image.library_paths]
        return gone | (await self._store.held_everywhere(asked) if asked else set())

    async def _embed(self, images: list[Image]) -> tuple[list[ImageVector], list[tuple[Image, ItemFailure]]]:
        """Vectors for ``images``, and those that have none with the reason."""
        started = time.perf_counter()
        embedded = await self._embedder.embed(images)
        metrics.EMBED_SECONDS.observe(time.perf_counter() - started)
        vectors: list[ImageVector] = []
        failed: list[tuple[Image, ItemFailure]] = []
        for image, vector, failure in embedded:
            if vector is None:
                failure = failure or ItemFailure(reason=Reason.EMBED_FAILED, detail="the service gave no reason")
                failed.append((image, failure))
                continue
            self._check_size(vector.shape)
            vectors.append(ImageVector(image.sha256, vector, image.events))
        return vectors, failed

    def _check_size(self, shape: tuple[int, ...]) -> None:
        if shape != (self.model.dim,):
            raise ModelChanged(
                f"the embedding service now returns vectors of size {shape[-1]}, but collection "
                f"{self.settings.qdrant_collection!r} holds {self.model.model} vectors of size {self.model.dim}; "
                "restart the indexer to check the model"
            )

    async def _write(self, images: list[ImageVector]) -> None:
        started = time.perf_counter()
        await retry_until_done(
            "qdrant",
            (StoreUnavailable, StoreConflict),
            lambda: self._store.write(images, model=self.model.model),
            maximum_s=self.settings.indexer_retry_max_s,
        )
        metrics.UPSERT_SECONDS.observe(time.perf_counter() - started)
