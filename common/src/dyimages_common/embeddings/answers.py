"""What a client makes of the embedding service's answers: the exceptions it raises, and the vectors.

Kept apart from the clients (:mod:`dyimages_common.embeddings.client`, which re-exports every name
here) so both the blocking and the asyncio client read answers the same way.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np

from dyimages_common.embeddings.wire import EmbedResponse, ImageRef, ItemFailure, ModelIdentity


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
    """The service refused the request as a whole (4xx), or the one item asked for (its ``failure``):
    retrying will not help."""

    def __init__(self, message: str, failure: ItemFailure | None = None) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class ImageEmbeddings:
    """One entry per requested image: a vector, or None and the reason; and the model that made them."""

    vectors: list[np.ndarray | None]
    errors: list[ItemFailure | None]
    identity: ModelIdentity


def image_payload(paths: list[str] | None = None, data: list[bytes] | None = None) -> dict[str, Any]:
    refs: list[dict[str, str]] = [{"path": p} for p in paths or []]
    refs += [{"data": base64.b64encode(d).decode("ascii")} for d in data or []]
    return {"images": refs}


def refs_payload(refs: Sequence[ImageRef]) -> dict[str, Any]:
    """An ``/embed`` body naming each image by its ref (stored path, library path or bytes)."""
    return {"images": [ref.model_dump(exclude_none=True) for ref in refs]}


def parse_answer(response: httpx.Response, expected: int) -> EmbedResponse:
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


def as_images(parsed: EmbedResponse) -> ImageEmbeddings:
    vectors = [None if v is None else np.asarray(v, dtype=np.float32) for v in parsed.vectors]
    return ImageEmbeddings(vectors=vectors, errors=list(parsed.errors), identity=parsed.identity)


def _refused_item(parsed: EmbedResponse) -> EmbeddingRequestError:
    failure = next((error for error in parsed.errors if error is not None), None)
    return EmbeddingRequestError(str(failure or "an item could not be embedded"), failure)


def single_vector(parsed: EmbedResponse) -> np.ndarray:
    if parsed.vectors[0] is None:
        raise _refused_item(parsed)
    return np.asarray(parsed.vectors[0], dtype=np.float32)


def text_vectors(parsed: EmbedResponse) -> np.ndarray:
    if any(v is None for v in parsed.vectors):
        raise _refused_item(parsed)
    return np.asarray(parsed.vectors, dtype=np.float32)


NETWORK_ERRORS = (httpx.TransportError,)


def unavailable(exc: httpx.TransportError) -> EmbeddingUnavailable:
    """The client's exception for a network error: unreachable, timed out, or cut off mid-request."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return EmbeddingUnreachable(f"embedding service unreachable: {exc!r}")
    if isinstance(exc, httpx.TimeoutException):
        return EmbeddingTimeout(f"embedding service gave no answer in time: {exc!r}")
    return EmbeddingConnectionLost(f"embedding service connection lost: {exc!r}")
