"""Turning a query into one vector: parsing negative terms, embedding the parts, combining them.

A query is any mix of a text, an uploaded image and "more like this" on an indexed image, minus
negative texts (``beach -people -"parked cars"``). The query vector is

    normalise(mean(positive vectors) - w * mean(negative vectors))

over L2-normalised embeddings (cosine distance), which keeps the result a direction in the same
space the images live in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from dyimages_common.embeddings.client import EmbeddingClient, ModelIdentity
from dyimages_common.store.errors import REINDEX_HINT, CollectionMismatchError
from dyimages_common.store.protocol import ImageStore

# A negative term: `-word` or `-"a phrase"`, at the start or after whitespace.
_NEGATIVE = re.compile(r'(?:^|(?<=\s))-(?:"([^"]+)"|(\S+))')
MAX_WORDS = 5
MIN_WORD_CHARS = 3

IndexMismatch = CollectionMismatchError  # the app's name: "the index was built by another model: reindex"


class QueryError(ValueError):
    """The query itself cannot be searched (nothing to search for, unknown image): say so to the person."""


@dataclass(frozen=True)
class ParsedText:
    positive: str
    negatives: tuple[str, ...]


def parse_text(text: str) -> ParsedText:
    """Split ``beach -people -"parked cars"`` into the text to find and the texts to avoid."""
    negatives = tuple((quoted or word).strip() for quoted, word in _NEGATIVE.findall(text))
    positive = " ".join(_NEGATIVE.sub(" ", text).split())
    return ParsedText(positive=positive, negatives=tuple(n for n in negatives if n))


def query_words(text: str) -> list[str]:
    """The words of a query's positive text worth matching in the payload's ``words``: 3+ characters, the first 5."""
    return [word for word in dict.fromkeys(text.split()) if len(word) >= MIN_WORD_CHARS][:MAX_WORDS]


class Embedder(Protocol):
    """Turns query parts into L2-normalised vectors. The UI wraps these in its caches."""

    def text(self, text: str) -> np.ndarray: ...

    def image(self, data: bytes) -> np.ndarray: ...


class ServiceEmbedder:
    """The embedding service over HTTP, without caching; one per query (the client may be shared)."""

    def __init__(self, client: EmbeddingClient) -> None:
        self._client = client
        self._made: ModelIdentity | None = None

    def text(self, text: str) -> np.ndarray:
        vectors, self._made = self._client.embed_texts_made([text])
        return vectors[0]

    def image(self, data: bytes) -> np.ndarray:
        vector, self._made = self._client.embed_image_bytes_made(data)
        return vector

    def answered_by(self) -> ModelIdentity | None:
        """The model of this embedder's latest vector, as the service's answer named it."""
        return self._made


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        raise QueryError("the query cancels itself out; remove a negative term")
    return (vector / norm).astype(np.float32)


def combine(positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray], negative_weight: float) -> np.ndarray:
    """normalise(mean(positives) - w * mean(negatives)); every input is normalised first."""
    if not positives:
        raise QueryError("nothing to search for: type a text, upload an image or pick an image")
    vector = np.mean([normalise(v) for v in positives], axis=0)
    if negatives and negative_weight:
        vector = vector - negative_weight * np.mean([normalise(v) for v in negatives], axis=0)
    return normalise(vector)


def stored_vector(index: ImageStore, sha256: str) -> np.ndarray:
    """The indexed vector of an image, for "more like this" (no embedding call needed)."""
    vector = index.vector_of(sha256)
    if vector is None:
        raise QueryError(f"image {sha256[:12]}… is not in the index")
    return vector


def answered_by(embedder: Embedder) -> ModelIdentity | None:
    """The model and weights of the embedding service's latest answer, for an embedder that knows them
    (``answered_by()``, as the service's embedders do); None otherwise."""
    method = getattr(embedder, "answered_by", None)
    return method() if callable(method) else None


def check_query_model(index: ImageStore, answered: ModelIdentity | None) -> None:
    """Refuse a query vector of another model or other weights than the index's, even of the same size
    (its scores would be meaningless); ``answered`` None (no embedding asked) checks nothing."""
    if answered is None:
        return
    try:  # no collection or no Qdrant: the search itself says which
        found = index.collection_model()
    except Exception:
        return
    if found is None:
        return
    if (found.model is not None and found.model != answered.model) or (
        found.weights is not None and found.weights != answered.pretrained
    ):
        size = f"{found.dim}-dimensional " if found.dim else ""
        raise IndexMismatch(
            f"the index holds {size}vectors of {found.model} ({found.weights or 'weights not recorded'}), but the "
            f"embedding service answered with {answered}. {REINDEX_HINT}"
        )
