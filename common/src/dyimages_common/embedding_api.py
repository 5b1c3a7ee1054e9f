"""The embedding service's HTTP API: request and response models, and its clients.

Endpoints (JSON):

* ``GET /health``: 200 once the model is loaded in every worker, 503 before.
* ``GET /info``: :class:`ModelInfo`.
* ``POST /embed``: :class:`EmbedRequest` -> :class:`EmbedResponse`. Either ``texts`` or
  ``images`` (each named by its stored ``path`` under IMAGES_DIR, or sent as base64 ``data``).
  Vectors are L2-normalised. One bad image fails that item only: its vector is null and its
  error says why (items fail for good: missing file, not an image, too large). A request that is
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

import base64
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

EMBED_PATH = "/embed"
INFO_PATH = "/info"
HEALTH_PATH = "/health"
MAX_ITEMS_PER_REQUEST = 256
DEFAULT_TIMEOUT_S = 120.0
# A request that cannot be embedded by anything but a broken service: the probe of :meth:`usable`.
PROBE_TEXT = "a photo"


def server_request_timeout(client_timeout_s: float) -> float:
    """How long the service lets a request wait before its batch starts: half the client's timeout,
    leaving the other half for the batch itself (a 256-image batch takes seconds even on a CPU)."""
    return client_timeout_s / 2


class ImageRef(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="Stored path relative to IMAGES_DIR")
    data: str | None = Field(None, description="Image bytes, base64")

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if (self.path is None) == (self.data is None):
            raise ValueError("an image is named by exactly one of `path` or `data`")
        return self


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] | None = Field(None, max_length=MAX_ITEMS_PER_REQUEST)
    images: list[ImageRef] | None = Field(None, max_length=MAX_ITEMS_PER_REQUEST)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> EmbedRequest:
        if (self.texts is None) == (self.images is None):
            raise ValueError("send exactly one of `texts` or `images`")
        items = self.texts if self.texts is not None else self.images
        if not items:
            raise ValueError("nothing to embed: the list is empty")
        if self.texts is not None and any(not text.strip() for text in self.texts):
            raise ValueError("a text is empty")
        return self


@dataclass(frozen=True)
class ModelIdentity:
    """What made a vector: the OpenCLIP model name and its weights (pretrained tag or checkpoint)."""

    model: str
    pretrained: str

    def __str__(self) -> str:
        return f"{self.model} ({self.pretrained})"


class EmbedResponse(BaseModel):
    model: str
    pretrained: str
    dim: int
    vectors: list[list[float] | None]
    errors: list[str | None]

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.model, self.pretrained)


class ModelInfo(BaseModel):
    model: str
    pretrained: str
    dim: int
    device: str
    context_length: int

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.model, self.pretrained)


class EmbeddingUnavailable(RuntimeError):
    """The service did not answer this request (down, starting, overloaded, faulted): retry later.

    Whether the service or the request is at fault, the service's :meth:`EmbeddingClient.usable`
    tells: a request that fails while the service answers its probe is suspect (a poison item).
    """


class EmbeddingUnreachable(EmbeddingUnavailable):
    """The request never reached the service (connection refused, no route): the service is down."""


class EmbeddingConnectionLost(EmbeddingUnavailable):
    """The connection broke while the service had the request (it stopped or crashed meanwhile)."""


class EmbeddingTimeout(EmbeddingUnavailable):
    """No answer within the client's timeout: the service is overloaded, or the request hangs it."""


class EmbeddingBusy(EmbeddingUnavailable):
    """504: the request waited too long for the model and was never computed; the service is overloaded."""


class EmbeddingRequestError(ValueError):
    """The service refused the request as a whole (4xx): retrying will not help."""


@dataclass(frozen=True)
class ImageEmbeddings:
    """One entry per requested image: a vector, or None and the reason; and the model that made them."""

    vectors: list[np.ndarray | None]
    errors: list[str | None]
    identity: ModelIdentity


def _image_payload(paths: list[str] | None = None, data: list[bytes] | None = None) -> dict[str, Any]:
    refs: list[dict[str, str]] = [{"path": p} for p in paths or []]
    refs += [{"data": base64.b64encode(d).decode("ascii")} for d in data or []]
    return {"images": refs}


def _parse(response: httpx.Response, expected: int) -> EmbedResponse:
    if response.status_code == 504:
        raise EmbeddingBusy(f"embedding service too busy, the request was not computed (504): {response.text[:300]}")
    if response.status_code >= 500:
        raise EmbeddingUnavailable(f"embedding service answered {response.status_code}: {response.text[:300]}")
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise EmbeddingRequestError(f"embedding service refused the request ({response.status_code}): {detail}")
    parsed = EmbedResponse.model_validate_json(response.content)
    if len(parsed.vectors) != expected or len(parsed.errors) != expected:
        raise EmbeddingUnavailable(f"embedding service returned {len(parsed.vectors)} vectors for {expected} items")
    return parsed


def _as_images(parsed: EmbedResponse) -> ImageEmbeddings:
    vectors = [None if v is None else np.asarray(v, dtype=np.float32) for v in parsed.vectors]
    return ImageEmbeddings(vectors=vectors, errors=list(parsed.errors), identity=parsed.identity)


def _single(parsed: EmbedResponse) -> np.ndarray:
    if parsed.vectors[0] is None:
        raise EmbeddingRequestError(parsed.errors[0] or "the item could not be embedded")
    return np.asarray(parsed.vectors[0], dtype=np.float32)


def _texts(parsed: EmbedResponse) -> np.ndarray:
    if any(v is None for v in parsed.vectors):
        raise EmbeddingRequestError(next(e for e in parsed.errors if e) or "a text could not be embedded")
    return np.asarray(parsed.vectors, dtype=np.float32)


_NETWORK_ERRORS = (httpx.TransportError,)


def _unavailable(exc: httpx.TransportError) -> EmbeddingUnavailable:
    """The client's exception for a network error: unreachable, timed out, or cut off mid-request."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return EmbeddingUnreachable(f"embedding service unreachable: {exc!r}")
    if isinstance(exc, httpx.TimeoutException):
        return EmbeddingTimeout(f"embedding service gave no answer in time: {exc!r}")
    return EmbeddingConnectionLost(f"embedding service connection lost: {exc!r}")


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
        except _NETWORK_ERRORS as exc:
            raise _unavailable(exc) from exc

    def _post(self, payload: dict[str, Any], expected: int) -> EmbedResponse:
        try:
            response = self._http.post(EMBED_PATH, json=payload)
        except _NETWORK_ERRORS as exc:
            raise _unavailable(exc) from exc
        parsed = _parse(response, expected)
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
        return _texts(self._post({"texts": texts}, len(texts)))

    def embed_image_paths(self, paths: list[str]) -> ImageEmbeddings:
        return _as_images(self._post(_image_payload(paths=paths), len(paths)))

    def embed_image_bytes(self, data: bytes) -> np.ndarray:
        return _single(self._post(_image_payload(data=[data]), 1))


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
        except _NETWORK_ERRORS as exc:
            raise _unavailable(exc) from exc

    async def _post(self, payload: dict[str, Any], expected: int) -> EmbedResponse:
        try:
            response = await self._http.post(EMBED_PATH, json=payload)
        except _NETWORK_ERRORS as exc:
            raise _unavailable(exc) from exc
        parsed = _parse(response, expected)
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
        return _texts(await self._post({"texts": texts}, len(texts)))

    async def embed_image_paths(self, paths: list[str]) -> ImageEmbeddings:
        return _as_images(await self._post(_image_payload(paths=paths), len(paths)))
