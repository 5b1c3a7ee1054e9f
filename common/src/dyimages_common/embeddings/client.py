"""The embedding service's HTTP API and its clients.

The request and response models are in :mod:`dyimages_common.embeddings.wire` (the service imports
only those), how answers become vectors or exceptions in :mod:`dyimages_common.embeddings.answers`;
this module re-exports both, so a client imports from here alone.

Endpoints (JSON):

* ``GET /health``: 200 once the model is loaded in every worker, 503 before.
* ``GET /info``: :class:`ModelInfo`.
* ``POST /embed``: :class:`EmbedRequest` -> :class:`EmbedResponse`. Either ``texts`` or
  ``images`` (each named by its stored ``path`` under IMAGES_DIR, or sent as base64 ``data``).
  Vectors are L2-normalised. One bad image fails that item only: its vector is null and its
  error is an :class:`ItemFailure`, ``{"reason": "<Reason>", "detail": "..."}`` (items fail for
  good: missing file, not an image, too large). A request that is
  wrong as a whole gets a 4xx with a ``detail``; 5xx and 503 mean the service is at fault or
  not ready, and the request may be retried. Every answer names the ``model`` and its weights
  (``pretrained``) that made its vectors, so a client can refuse vectors of another model even
  when they have the same size (replicas behind one URL running different weights).
* ``GET /metrics``: Prometheus.

Timeouts agree, from one setting: a client gives up after ``EMBEDDING_TIMEOUT_S``; the service
reads the same variable and answers 504 to a request that has waited :func:`server_request_timeout`
(half of it) before its batch starts, so it never computes a batch its client has already given up
on (and will send again).

The indexer, the app, the CLI and the benchmarks all use :class:`EmbeddingClient` or
:class:`AsyncEmbeddingClient`; nothing else speaks this API.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np

from dyimages_common.embeddings.answers import (
    NETWORK_ERRORS,
    EmbeddingBusy,
    EmbeddingConnectionLost,
    EmbeddingRequestError,
    EmbeddingTimeout,
    EmbeddingUnavailable,
    EmbeddingUnreachable,
    ImageEmbeddings,
    as_images,
    image_payload,
    parse_answer,
    refs_payload,
    single_vector,
    text_vectors,
    unavailable,
)
from dyimages_common.embeddings.wire import (
    EMBED_PATH,
    HEALTH_PATH,
    INFO_PATH,
    MAX_ITEMS_PER_REQUEST,
    EmbedRequest,
    EmbedResponse,
    ImageRef,
    ItemFailure,
    ModelIdentity,
    ModelInfo,
    server_request_timeout,
)

# The wire names are re-exported: a client needs this one module.
__all__ = [
    "EMBED_PATH",
    "HEALTH_PATH",
    "INFO_PATH",
    "MAX_ITEMS_PER_REQUEST",
    "AsyncEmbeddingClient",
    "EmbedRequest",
    "EmbedResponse",
    "EmbeddingBusy",
    "EmbeddingClient",
    "EmbeddingConnectionLost",
    "EmbeddingRequestError",
    "EmbeddingTimeout",
    "EmbeddingUnavailable",
    "EmbeddingUnreachable",
    "ImageEmbeddings",
    "ImageRef",
    "ItemFailure",
    "ModelIdentity",
    "ModelInfo",
    "server_request_timeout",
]

DEFAULT_TIMEOUT_S = 120.0
# A request that cannot be embedded by anything but a broken service: the probe of :meth:`usable`.
PROBE_TEXT = "a photo"


class EmbeddingClient:
    """Blocking client (the Streamlit app, the CLI, benchmarks)."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)
        self.answered_by: ModelIdentity | None = None  # the model of the latest /embed answer

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> EmbeddingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _get(self, path: str) -> httpx.Response:
        try:
            return self._http.get(path)
        except NETWORK_ERRORS as exc:
            raise unavailable(exc) from exc

    def _post(self, payload: dict[str, Any], expected: int) -> EmbedResponse:
        try:
            response = self._http.post(EMBED_PATH, json=payload)
        except NETWORK_ERRORS as exc:
            raise unavailable(exc) from exc
        parsed = parse_answer(response, expected)
        self.answered_by = parsed.identity
        return parsed

    def healthy(self) -> bool:
        try:
            return self._get(HEALTH_PATH).status_code == 200
        except EmbeddingUnavailable:
            return False

    def info(self) -> ModelInfo:
        response = self._get(INFO_PATH)
        if response.status_code != 200:
            raise EmbeddingUnavailable(f"embedding service info answered {response.status_code}")
        return ModelInfo.model_validate_json(response.content)

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        return text_vectors(self._post({"texts": texts}, len(texts)))

    def embed_texts_made(self, texts: list[str]) -> tuple[np.ndarray, ModelIdentity]:
        """The vectors and the model that made them, read from the same answer (``answered_by`` is
        shared by every thread using this client, so it may already name another request's model)."""
        parsed = self._post({"texts": texts}, len(texts))
        return text_vectors(parsed), parsed.identity

    def embed_image_paths(self, paths: list[str]) -> ImageEmbeddings:
        return as_images(self._post(image_payload(paths=paths), len(paths)))

    def embed_images(self, refs: list[ImageRef]) -> ImageEmbeddings:
        """Stored images and library photos in one request (each ref names one)."""
        return as_images(self._post(refs_payload(refs), len(refs)))

    def embed_image_bytes(self, data: bytes) -> np.ndarray:
        return single_vector(self._post(image_payload(data=[data]), 1))

    def embed_image_bytes_made(self, data: bytes) -> tuple[np.ndarray, ModelIdentity]:
        """The vector of an uploaded image and the model that made it, from the same answer."""
        parsed = self._post(image_payload(data=[data]), 1)
        return single_vector(parsed), parsed.identity


class AsyncEmbeddingClient:
    """Asyncio client (the indexer)."""

    def __init__(self, base_url: str, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)
        self.answered_by: ModelIdentity | None = None  # the model of the latest /embed answer

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncEmbeddingClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _get(self, path: str) -> httpx.Response:
        try:
            return await self._http.get(path)
        except NETWORK_ERRORS as exc:
            raise unavailable(exc) from exc

    async def _post(self, payload: dict[str, Any], expected: int) -> EmbedResponse:
        try:
            response = await self._http.post(EMBED_PATH, json=payload)
        except NETWORK_ERRORS as exc:
            raise unavailable(exc) from exc
        parsed = parse_answer(response, expected)
        self.answered_by = parsed.identity
        return parsed

    async def healthy(self) -> bool:
        try:
            return (await self._get(HEALTH_PATH)).status_code == 200
        except EmbeddingUnavailable:
            return False

    async def usable(self) -> bool:
        """Whether the service serves requests now: /health is 200 and a tiny known-good request
        (one short text) gets its vector. A batch that fails while this holds is at fault itself."""
        if not await self.healthy():
            return False
        try:
            await self._post({"texts": [PROBE_TEXT]}, 1)
        except (EmbeddingUnavailable, EmbeddingRequestError, ValueError):
            return False
        return True

    async def info(self) -> ModelInfo:
        response = await self._get(INFO_PATH)
        if response.status_code != 200:
            raise EmbeddingUnavailable(f"embedding service info answered {response.status_code}")
        return ModelInfo.model_validate_json(response.content)

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        return text_vectors(await self._post({"texts": texts}, len(texts)))

    async def embed_image_paths(self, paths: list[str]) -> ImageEmbeddings:
        return as_images(await self._post(image_payload(paths=paths), len(paths)))

    async def embed_images(self, refs: list[ImageRef]) -> ImageEmbeddings:
        """Stored images and library photos in one request (each ref names one)."""
        return as_images(await self._post(refs_payload(refs), len(refs)))
