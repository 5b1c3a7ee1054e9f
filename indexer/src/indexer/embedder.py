"""Embedding a batch: one ``/embed`` request, split until the image at fault is alone.

What fails because of the batch (a 4xx, or a 5xx/timeout/crash while the service passes its probe)
is split in halves; a single image that keeps failing is given up with a reason after
``INDEXER_EMBED_ATTEMPTS`` tries. What fails because the service is down waits for it and counts
for nothing. Every answer must come from the collection's model and weights (:class:`ModelChanged`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np

from dyimages_common.backoff import async_retrying
from dyimages_common.embeddings.client import (
    AsyncEmbeddingClient,
    EmbeddingBusy,
    EmbeddingConnectionLost,
    EmbeddingRequestError,
    EmbeddingTimeout,
    EmbeddingUnavailable,
    ItemFailure,
    ModelIdentity,
)
from dyimages_common.reasons import Reason
from dyimages_common.store.errors import REINDEX_HINT
from indexer import metrics
from indexer.batch import Image
from indexer.settings import IndexerSettings

log = logging.getLogger(__name__)


def known_failure(failure: ItemFailure) -> ItemFailure:
    """The embedding service's failure for one image, with a reason the tools here explain: one this
    indexer does not know (a newer service's) is ``embed_failed``, the service's text kept as the detail."""
    if failure.reason is Reason.UNKNOWN:
        return ItemFailure(reason=Reason.EMBED_FAILED, detail=str(failure))
    return failure


Embedded = tuple[Image, np.ndarray | None, ItemFailure | None]


class ModelChanged(RuntimeError):
    """The embedding service now answers with another model or weights than the collection's: stop."""


def _failure_reason(error: EmbeddingUnavailable) -> Reason:
    """The dead-letter reason for an image whose request keeps failing this way."""
    if isinstance(error, EmbeddingTimeout):
        return Reason.EMBED_TIMEOUT
    if isinstance(error, EmbeddingConnectionLost):
        return Reason.EMBED_CRASHED
    return Reason.EMBED_SERVER_ERROR


class BatchEmbedder:
    """Vectors for a batch of images from the embedding service, or the reason an image has none."""

    def __init__(self, settings: IndexerSettings) -> None:
        self.settings = settings
        self.client = AsyncEmbeddingClient(settings.embedding_service_url, timeout=settings.embedding_timeout_s)
        self.identity = ModelIdentity("", "")  # the collection's, once the indexer has started

    async def embed(self, images: Sequence[Image]) -> list[Embedded]:
        """One /embed request for the batch; what fails because of the batch is split until the image
        at fault is alone, what fails because the service is down waits for it.

        A request refused as a whole (4xx) is split at once. A request that fails otherwise is
        blamed (see :meth:`_blames_the_request`): a blamed batch is split, a blamed single image
        is tried ``INDEXER_EMBED_ATTEMPTS`` times and then failed with the reason, so one poison
        image cannot hold an indexer slot for good, nor hold back the rest of its batch.
        """
        refs = [image.ref for image in images]  # a stored file, or a photo of the library
        failures = 0
        while True:
            try:
                result = await self.client.embed_images(refs)
            except EmbeddingRequestError as exc:
                if len(images) == 1:
                    return [(images[0], None, ItemFailure(reason=Reason.EMBED_REFUSED, detail=str(exc)))]
                return await self.split(images)
            except EmbeddingUnavailable as exc:
                metrics.RETRIES.labels("embedding").inc()
                if not await self._blames_the_request(exc):
                    continue  # the service was down: that says nothing about this batch
                if len(images) > 1:
                    log.warning(
                        "a batch of %d failed while the embedding service works (%r); splitting it", len(images), exc
                    )
                    return await self.split(images)
                failures += 1
                if failures < self.settings.indexer_embed_attempts:
                    log.warning("an image failed %d time(s) while the embedding service works (%r)", failures, exc)
                    continue
                detail = f"failed {failures} times while the embedding service answered other requests; last: {exc}"
                return [(images[0], None, ItemFailure(reason=_failure_reason(exc), detail=detail))]
            self._check_model(result.identity)
            failures_of = [None if error is None else known_failure(error) for error in result.errors]
            return list(zip(images, result.vectors, failures_of, strict=True))

    async def split(self, images: Sequence[Image]) -> list[Embedded]:
        middle = len(images) // 2
        return await self.embed(images[:middle]) + await self.embed(images[middle:])

    async def _blames_the_request(self, error: EmbeddingUnavailable) -> bool:
        """After a failed /embed request: wait until the service passes its probe again, and say
        whether the request itself is to blame.

        It is when the service passed its probe right away (it serves others, not this one), or when
        the connection broke while the service held the request and the service was down after it
        (the request may crash it). A service that refused the connection, answered 504 (the request
        waited too long and never reached the model: overloaded), or failed its probe after
        answering 5xx or timing out (down, starting, overloaded), blames nothing.
        """
        waited = await self._wait_for_embedding()
        if isinstance(error, EmbeddingBusy):
            await asyncio.sleep(min(1.0, self.settings.indexer_retry_max_s))  # do not add to the overload
            return False
        return not waited or isinstance(error, EmbeddingConnectionLost)

    async def _wait_for_embedding(self) -> bool:
        """Back off until the embedding service passes its probe; True if it had to wait."""
        waited = False
        async for attempt in async_retrying(EmbeddingUnavailable, maximum=self.settings.indexer_retry_max_s):
            with attempt:
                if not await self.client.usable():
                    waited = True
                    raise EmbeddingUnavailable(
                        f"the embedding service at {self.settings.embedding_service_url} does not pass its probe "
                        "(GET /health and one short text)"
                    )
        return waited

    def _check_model(self, answered: ModelIdentity) -> None:
        """Refuse vectors of another model or other weights than the collection's, even of the same size."""
        if answered != self.identity:
            raise ModelChanged(
                f"the embedding service answered with vectors of {answered}, but collection "
                f"{self.settings.qdrant_collection!r} holds vectors of {self.identity}: refusing to mix them, "
                "the batch goes back to the queue. Run every replica behind EMBEDDING_SERVICE_URL with the "
                f"collection's model and weights, or move to the new model. {REINDEX_HINT}"
            )
