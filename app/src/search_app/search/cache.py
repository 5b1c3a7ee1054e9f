"""The query cache in Redis (REDIS_URL; empty = no cache), shared by every app process.

Two kinds of entries, both under the ``dyimages:query:`` prefix:

* **vectors**: the text → vector step (and an uploaded image → vector), keyed by the model, its
  weights and the normalised text (whitespace collapsed; not lower-cased, because a tokenizer may
  be case-sensitive). The model and weights come from the embedding service's ``/info``, asked at
  most every :data:`MODEL_INFO_TTL_S` seconds, so a service restarted with other weights stops
  hitting the old entries within that time. Kept :data:`VECTOR_TTL_S` (and Redis' LRU evicts first).
* **result pages**: keyed by the exact query vector (its bytes: so text, image and "more like this"
  queries all share one scheme, and another model's vector is another key), the filters, the
  excluded ids, offset and limit, the Qdrant store and the collection serving the index (a
  reindex's swap changes it), and that collection's **exact point count**. That count is the
  invalidation signal: the indexer writes one point per distinct image and nothing deletes single
  points (only ``dyimages drop`` and ``dyimages prune``, which clears these pages), so every newly
  indexed image raises the count and moves every later query to fresh keys; stale pages are never
  read again and expire. It costs one count per query (0.06 ms in embedded mode at 2,000 points
  here; one request to the server), plus one alias lookup. What the count does not see is a second URL
  merged into an existing point (same vector, same ranking, a longer ``urls`` list): pages live
  only APP_RESULTS_CACHE_TTL_S seconds, which bounds that staleness.

Redis is an optimisation, never a dependency: every call has short socket timeouts; on a failure
the search answers uncached, one warning is logged, and Redis is left alone for
:data:`RETRY_AFTER_S` before the next try (one info line when it answers again). The counter
``dyimages_app_query_cache_total{kind, outcome}`` counts hits, misses and unavailable lookups.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

import numpy as np
import redis
from prometheus_client import Counter
from pydantic import TypeAdapter
from redis.backoff import NoBackoff
from redis.retry import Retry

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.store.errors import CollectionMissing, StoreUnavailable
from dyimages_common.store.protocol import ImageStore
from search_app.search.model import EVERY_FIELD, Filters, Hit
from search_app.search.vectors import Embedder

# A result page as Redis keeps it: every field of every hit, the store's own included (not Hit.to_json,
# which leaves those out for people), so a page from the cache equals the page it stands for.
_PAGE = TypeAdapter(list[Hit])

log = logging.getLogger(__name__)

PREFIX = "dyimages:query:v1:"
VECTOR_TTL_S = 7 * 24 * 3600
MODEL_INFO_TTL_S = 30.0
RETRY_AFTER_S = 5.0

LOOKUPS = Counter(
    "dyimages_app_query_cache",
    "Query cache lookups by kind (vector, results) and outcome (hit, miss, unavailable: Redis not answering)",
    ["kind", "outcome"],
)
for _kind in ("vector", "results"):
    for _outcome in ("hit", "miss", "unavailable"):
        LOOKUPS.labels(_kind, _outcome)

T = TypeVar("T")


def normalise_text(text: str) -> str:
    """The cache key's form of a query text: surrounding and repeated whitespace removed."""
    return " ".join(text.split())


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def _vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


class QueryCache:
    """Vectors and result pages in Redis; see the module docstring for the keys and the signal."""

    def __init__(
        self, url: str, *, store: str = "", timeout_s: float = 0.1, results_ttl_s: int = 300, prefix: str = PREFIX
    ) -> None:
        self.prefix = prefix  # tests give their own
        self.store = store  # which Qdrant (server or embedded folder): part of every results key
        self.results_ttl_s = results_ttl_s
        self._redis = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeout_s,
            socket_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),  # a failed call is a miss, never a wait
        )
        self._lock = threading.Lock()
        self._down_until = 0.0  # monotonic time before which Redis is not tried; 0: up
        self._down_logged = False

    def close(self) -> None:
        self._redis.close()

    # --- Redis calls, guarded ----------------------------------------------------------------

    def _call(self, kind: str | None, operation: Callable[[redis.Redis], T]) -> T | None:
        """Run one Redis operation; None while Redis is down or when it fails (counted as
        "unavailable" for a lookup ``kind``)."""
        if self._down_until and time.monotonic() < self._down_until:
            if kind:
                LOOKUPS.labels(kind, "unavailable").inc()
            return None
        try:
            value = operation(self._redis)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = time.monotonic() + RETRY_AFTER_S
                if not self._down_logged:
                    self._down_logged = True
                    log.warning("query cache: Redis is not answering (%s); searching uncached until it is back", exc)
            if kind:
                LOOKUPS.labels(kind, "unavailable").inc()
            return None
        if self._down_until:
            with self._lock:
                if self._down_logged:
                    log.info("query cache: Redis answers again; caching queries")
                self._down_until, self._down_logged = 0.0, False
        return value

    def _get(self, kind: str, key: str) -> bytes | None:
        """The stored value; counts a hit or a miss (or unavailable)."""
        found = self._call(kind, lambda r: r.get(key))
        if found is None:
            if not self._down_until:
                LOOKUPS.labels(kind, "miss").inc()
            return None
        LOOKUPS.labels(kind, "hit").inc()
        return found  # type: ignore[return-value]

    def _set(self, key: str, value: bytes, ttl_s: int) -> None:
        if not self._down_until:
            self._call(None, lambda r: r.set(key, value, ex=ttl_s))

    # --- vectors -------------------------------------------------------------------------------

    def vector(self, model: str, weights: str, kind: str, content: str | bytes, compute: Callable[[], np.ndarray]):
        """The cached vector of a text (normalised) or an image (its bytes' digest), else computed and stored."""
        if isinstance(content, bytes):
            content = hashlib.sha256(content).hexdigest()
        key = f"{self.prefix}vec:{_digest(model, weights, kind, content)}"
        found = self._get("vector", key)
        if found is not None:
            return np.frombuffer(found, dtype=np.float32).copy()
        vector = compute()
        self._set(key, _vector_bytes(vector), VECTOR_TTL_S)
        return vector

    def embedder(self, inner: Embedder, identity: Callable[[], tuple[str, str]]) -> CachingEmbedder:
        """``inner`` with its vectors cached under the (model, weights) ``identity`` returns."""
        return CachingEmbedder(self, inner, identity)

    # --- result pages --------------------------------------------------------------------------

    def results(
        self,
        index: ImageStore,
        vector: np.ndarray,
        *,
        filters: Filters,
        limit: int,
        offset: int,
        exclude_ids: Sequence[str],
        compute: Callable[[], list[Hit]],
    ) -> list[Hit]:
        """A page of results from the cache, else from ``compute`` (then stored).

        When the point count cannot be read (no collection, Qdrant down), ``compute`` runs
        uncached and raises the error the page explains.
        """
        try:
            collection = index.serving()  # another collection after a reindex's swap: other keys
            count = index.count(collection) if collection else None
        except (StoreUnavailable, CollectionMissing, ValueError):  # Qdrant down: the uncached search explains it
            return compute()
        if count is None:  # no collection: the uncached search explains it
            return compute()
        vector_key = hashlib.sha256(_vector_bytes(vector)).hexdigest()
        key = f"{self.prefix}res:" + _digest(
            self.store, collection, count, vector_key, asdict(filters), sorted(exclude_ids), offset, limit
        )
        found = self._get("results", key)
        if found is not None:
            return _PAGE.validate_json(found)
        hits = compute()
        self._set(key, _PAGE.dump_json(hits, context=EVERY_FIELD), self.results_ttl_s)
        return hits


class CachingEmbedder:
    """An :class:`~search_app.search.engine.Embedder` that asks the cache before ``inner``."""

    def __init__(self, cache: QueryCache, inner: Embedder, identity: Callable[[], tuple[str, str]]) -> None:
        self._cache, self._inner, self._identity = cache, inner, identity

    def text(self, text: str) -> np.ndarray:
        model, weights = self._identity()
        return self._cache.vector(model, weights, "text", normalise_text(text), lambda: self._inner.text(text))

    def image(self, data: bytes) -> np.ndarray:
        model, weights = self._identity()
        return self._cache.vector(model, weights, "image", data, lambda: self._inner.image(data))

    def answered_by(self) -> object | None:
        """The inner embedder's ``answered_by()`` (the model of the service's latest answer) when it
        has one, for the index's model check; the cached vectors are keyed by the same model."""
        method = getattr(self._inner, "answered_by", None)
        return method() if callable(method) else None


class ServiceIdentity:
    """The embedding service's (model, weights), asked at most every :data:`MODEL_INFO_TTL_S` seconds."""

    def __init__(self, client: EmbeddingClient, ttl_s: float = MODEL_INFO_TTL_S) -> None:
        self._client, self._ttl_s = client, ttl_s
        self._value: tuple[str, str] | None = None
        self._asked = 0.0

    def __call__(self) -> tuple[str, str]:
        now = time.monotonic()
        if self._value is None or now - self._asked > self._ttl_s:
            info = self._client.info()
            self._value, self._asked = (info.model, info.pretrained), now
        return self._value
