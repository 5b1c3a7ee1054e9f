"""Query vectors cached under the model that made them: in Redis (shared) and in the process (the UI's).

A vector is looked up under the model the service is *expected* to run (:class:`ServiceIdentity`: its
``/info``, at most :data:`MODEL_INFO_TTL_S` old, and corrected by every answer), but stored only under
the model and weights the embedding service named *in the answer that made it*. So a vector made by
another model than expected (the service restarted with other weights, replicas behind one URL that
differ) is never filed under the wrong model, and a vector found carries its model on to the index's
model check (:func:`search_app.search.vectors.check_query_model`).

One :class:`CachingEmbedder` serves one query: every vector it hands out must be of one model, or the
query is refused (:class:`ModelsMixed`) rather than combining vectors of two models.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

import numpy as np

from dyimages_common.embeddings.client import EmbeddingClient, ModelIdentity
from search_app.search.vectors import Embedder, QueryError, answered_by

MODEL_INFO_TTL_S = 30.0


class ModelsMixed(QueryError):
    """The vectors of one query came from two models (the service changed while it was asked)."""


class VectorShelf(Protocol):
    """Where vectors are kept, by (model, kind, content): Redis (:class:`~search_app.search.cache.QueryCache`)
    or the process (:class:`ProcessVectors`)."""

    def find_vector(self, made_by: ModelIdentity, kind: str, content: str) -> np.ndarray | None: ...

    def keep_vector(self, made_by: ModelIdentity, kind: str, content: str, vector: np.ndarray) -> None: ...


def normalise_text(text: str) -> str:
    """The cache key's form of a query text: surrounding and repeated whitespace removed (not lower-cased:
    a tokenizer may be case-sensitive)."""
    return " ".join(text.split())


class ServiceIdentity:
    """The (model, weights) the embedding service is expected to answer with: its ``/info``, asked at most
    every :data:`MODEL_INFO_TTL_S` seconds, and replaced at once by the model of any answer seen."""

    def __init__(self, client: EmbeddingClient, ttl_s: float = MODEL_INFO_TTL_S) -> None:
        self._client, self._ttl_s = client, ttl_s
        self._value: ModelIdentity | None = None
        self._asked = 0.0

    def __call__(self) -> ModelIdentity:
        value, now = self._value, time.monotonic()
        if value is None or now - self._asked > self._ttl_s:
            value = self._client.info().identity
            self._value, self._asked = value, now
        return value

    def saw(self, made_by: ModelIdentity) -> None:
        """An answer named this model: expect it from now on."""
        if made_by != self._value:
            self._value, self._asked = made_by, time.monotonic()


class CachingEmbedder:
    """An :class:`~search_app.search.vectors.Embedder` for one query that asks ``shelf`` before ``inner``.

    ``inner`` must say which model made its latest vector (``answered_by()``); a vector whose model it
    cannot name is used but never kept.
    """

    def __init__(self, shelf: VectorShelf, inner: Embedder, expected: ServiceIdentity) -> None:
        self._shelf, self._inner, self._expected = shelf, inner, expected
        self._made: ModelIdentity | None = None  # the model of every vector handed out so far

    def text(self, text: str) -> np.ndarray:
        return self._vector("text", normalise_text(text), lambda: self._inner.text(text))

    def image(self, data: bytes) -> np.ndarray:
        return self._vector("image", hashlib.sha256(data).hexdigest(), lambda: self._inner.image(data))

    def answered_by(self) -> ModelIdentity | None:
        """The model and weights of the vectors this query used (None before the first)."""
        return self._made

    def _vector(self, kind: str, content: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
        expected = self._made or self._expected()  # a query's later parts: its first part's model
        found = self._shelf.find_vector(expected, kind, content)
        if found is not None:
            self._note(expected)
            return found
        vector = compute()
        made_by = answered_by(self._inner)
        if made_by is None:
            return vector
        self._expected.saw(made_by)
        self._shelf.keep_vector(made_by, kind, content, vector)
        self._note(made_by)
        return vector

    def _note(self, made_by: ModelIdentity) -> None:
        if self._made is not None and made_by != self._made:
            raise ModelsMixed(
                f"the embedding service answered with {made_by} after {self._made} within one query "
                "(its model changed meanwhile); search again"
            )
        self._made = made_by


class ProcessVectors:
    """The process's own vector cache (the UI's): at most ``max_entries`` vectors, least recently used
    out first, keyed by the model that made each one; safe across the sessions' threads."""

    def __init__(self, max_entries: int) -> None:
        self._max = max(0, max_entries)
        self._entries: OrderedDict[tuple[str, str, str, str], np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def find_vector(self, made_by: ModelIdentity, kind: str, content: str) -> np.ndarray | None:
        key = (made_by.model, made_by.pretrained, kind, content)
        with self._lock:
            found = self._entries.get(key)
            if found is not None:
                self._entries.move_to_end(key)
        return None if found is None else found.copy()

    def keep_vector(self, made_by: ModelIdentity, kind: str, content: str, vector: np.ndarray) -> None:
        if not self._max:
            return
        with self._lock:
            self._entries[(made_by.model, made_by.pretrained, kind, content)] = vector.copy()
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
