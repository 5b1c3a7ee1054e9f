"""The embedding service's HTTP API: request and response models, and its clients.

Endpoints (JSON):

* ``GET /health``: 200 once the model is loaded in every worker, 503 before.
* ``GET /info``: :class:`ModelInfo`.
* ``POST /embed``: :class:`EmbedRequest` -> :class:`EmbedResponse`. Either ``texts`` or
  ``images`` (each named by its stored ``path`` under IMAGES_DIR, or sent as base64 ``data``).
  Vectors are L2-normalised. One bad image fails that item only: its vector is null and its
  error says why (items fail for good: missing file, not an image, too large). A request that is
  wrong as a whole gets a 4xx with a ``detail``; 5xx and 503 mean the service is at fault or
  not ready, and the request may be retried.
* ``GET /metrics``: Prometheus.

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


class EmbedResponse(BaseModel):
    model: str
    dim: int
    vectors: list[list[float] | None]
    errors: list[str | None]


class ModelInfo(BaseModel):
    model: str
    pretrained: str
    dim: int
    device: str
    context_length: int


class EmbeddingUnavailable(RuntimeError):
    """The service cannot answer now (down, starting, overloaded, faulted): retry later."""


class EmbeddingRequestError(ValueError):
    """The service refused the request as a whole (4xx): retrying will not help."""


@dataclass(frozen=True)
class ImageEmbeddings:
    """One entry per requested image: a vector, or None and the reason."""

    vectors: list[np.ndarray | None]
    errors: list[str | None]


def _image_payload(paths: list[str] | None = None, data: list[bytes] | None = None) -> dict[str, Any]:
    refs: list[dict[str, str]] = [{"path": p} for p in paths or []]
    refs += [{"data": base64.b64encode(d).decode("ascii")} for d in data or []]
    return {"images": refs}


def _parse(response: httpx.Response, expected: int) -> EmbedResponse:
    if response.status_code == 503 or response.status_code >= 500:
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
    return ImageEmbeddings(vectors=vectors, errors=list(parsed.errors))


def _single(parsed: EmbedResponse) -> np.ndarray:
    if parsed.vectors[0] is None:
        raise EmbeddingRequestError(parsed.errors[0] or "the item could not be embedded")
    return np.asarray(parsed.vectors[0], dtype=np.float32)


def _texts(parsed: EmbedResponse) -> np.ndarray:
    if any(v is None for v in parsed.vectors):
        raise EmbeddingRequestError(next(e for e in parsed.errors if e) or "a text could not be embedded")
    return np.asarray(parsed.vectors, dtype=np.float32)


_NETWORK_ERRORS = (httpx.TransportError,)


class EmbeddingClient:
    """Blocking client (the Streamlit app, the CLI, benchmarks)."""

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

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
            raise EmbeddingUnavailable(f"embedding service unreachable: {exc!r}") from exc

    def _post(self, payload: dict[str, Any], expected: int) -> EmbedResponse:
        try:
            response = self._http.post(EMBED_PATH, json=payload)
        except _NETWORK_ERRORS as exc:
            raise EmbeddingUnavailable(f"embedding service unreachable: {exc!r}") from exc
        return _parse(response, expected)

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

    def __init__(self, base_url: str, timeout: float = 120.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url.rstrip("/"), timeout=timeout)

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
            raise EmbeddingUnavailable(f"embedding service unreachable: {exc!r}") from exc

    async def _post(self, payload: dict[str, Any], expected: int) -> EmbedResponse:
        try:
            response = await self._http.post(EMBED_PATH, json=payload)
        except _NETWORK_ERRORS as exc:
            raise EmbeddingUnavailable(f"embedding service unreachable: {exc!r}") from exc
        return _parse(response, expected)

    async def healthy(self) -> bool:
        try:
            return (await self._get(HEALTH_PATH)).status_code == 200
        except EmbeddingUnavailable:
            return False

    async def info(self) -> ModelInfo:
        response = await self._get(INFO_PATH)
        if response.status_code != 200:
            raise EmbeddingUnavailable(f"embedding service info answered {response.status_code}")
        return ModelInfo.model_validate_json(response.content)

    async def embed_texts(self, texts: list[str]) -> np.ndarray:
        return _texts(await self._post({"texts": texts}, len(texts)))

    async def embed_image_paths(self, paths: list[str]) -> ImageEmbeddings:
        return _as_images(await self._post(_image_payload(paths=paths), len(paths)))
