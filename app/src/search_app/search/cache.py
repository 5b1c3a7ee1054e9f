"""The query cache in Redis (REDIS_URL; empty = no cache), shared by every app process.

Two kinds of entries, both under the versioned prefix of :mod:`search_app.search.cache_entries`:

* **vectors**: the text → vector step (and an uploaded image → vector), keyed by the model and weights
  the embedding service named in the answer that made the vector, the kind and the normalised text
  (whitespace collapsed; not lower-cased, because a tokenizer may be case-sensitive) or the image's
  digest; the entry holds that model again, checked on every read (:mod:`search_app.search.cache_vectors`).
  Kept :data:`VECTOR_TTL_S` (and Redis' LRU evicts first).
* **result pages**: keyed by the exact query vector (its bytes: so text, image and "more like this"
  queries all share one scheme) and the model that made it, the query's words (``--words`` matches them
  as typed), the filters, the excluded ids, offset and limit, the store and the collection serving the
  index (a reindex's swap changes it), that collection's **exact point count** and the cache's
  **generation**. The count is the invalidation signal of indexing: the indexer writes one point per
  distinct image, so every newly indexed image raises it and moves every later query to fresh keys. The
  generation (:func:`forget_pages`) is the signal of removal: ``dyimages prune``, ``reindex`` and
  ``drop`` raise it after they change the index, so a count that falls and rises again, or a page a
  search computed while prune was removing images, is never read again. Stale pages expire. What neither
  sees is a second URL merged into an existing point (same vector, same ranking, a longer ``urls``
  list): pages live only APP_RESULTS_CACHE_TTL_S seconds, which bounds that staleness.

An entry that cannot be read back is counted (``unreadable``), deleted and computed again. Redis is an
optimisation, never a dependency: every call has short socket timeouts; on a failure the search answers
uncached, one warning is logged, and Redis is left alone for :data:`RETRY_AFTER_S` (one info line when it
answers again). ``dyimages_app_query_cache_total{kind, outcome}`` counts the lookups.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import TypeVar

import numpy as np
import redis
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.retry import Retry

from dyimages_common.embeddings.client import ModelIdentity
from dyimages_common.store.errors import CollectionMissing, StoreUnavailable
from dyimages_common.store.protocol import ImageStore
from search_app.search.cache_entries import (
    BASE_PREFIX,
    GENERATION,
    Unreadable,
    decode_page,
    decode_vector,
    digest,
    encode_page,
    encode_vector,
    vector_bytes,
    versioned_prefix,
)
from search_app.search.cache_vectors import CachingEmbedder, ServiceIdentity, normalise_text
from search_app.search.model import Filters, Hit
from search_app.search.vectors import Embedder

__all__ = ["PREFIX", "CachingEmbedder", "QueryCache", "ServiceIdentity", "forget_pages", "normalise_text"]

log = logging.getLogger(__name__)

PREFIX = BASE_PREFIX
VECTOR_TTL_S = 7 * 24 * 3600
RETRY_AFTER_S = 5.0
FORGET_TIMEOUT_S = 2.0

LOOKUPS = Counter(
    "dyimages_app_query_cache",
    "Query cache lookups by kind (vector, results) and outcome (hit, miss, unreadable: an entry that could "
    "not be read back, deleted; unavailable: Redis not answering)",
    ["kind", "outcome"],
)
for _kind in ("vector", "results"):
    for _outcome in ("hit", "miss", "unreadable", "unavailable"):
        LOOKUPS.labels(_kind, _outcome)

T = TypeVar("T")


def forget_pages(url: str, *, prefix: str = PREFIX) -> bool:
    """Raise the generation every result page's key holds, so no page cached before is read again
    (prune, reindex and drop call it after changing the index). False when Redis did not take it
    (or REDIS_URL is empty: nothing is cached)."""
    if not url:
        return False
    try:
        with redis.Redis.from_url(
            url, socket_timeout=FORGET_TIMEOUT_S, socket_connect_timeout=FORGET_TIMEOUT_S
        ) as client:
            client.incr(prefix + GENERATION)
    except (redis.RedisError, OSError) as exc:
        log.warning("query cache: could not raise the generation in Redis (%s)", exc)
        return False
    return True


class QueryCache:
    """Vectors and result pages in Redis; see the module docstring for the keys and the signals."""

    def __init__(
        self, url: str, *, store: str = "", timeout_s: float = 0.1, results_ttl_s: int = 300, prefix: str = PREFIX
    ) -> None:
        self.prefix = prefix  # tests give their own; forget_pages takes the same
        self.keys = versioned_prefix(prefix)
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

    def _get(self, kind: str, key: str, decode: Callable[[bytes], T]) -> T | None:
        """The stored value, decoded; counts a hit or a miss (or unavailable). An entry that cannot be
        decoded is a miss of its own kind ("unreadable"): deleted, so it is computed and stored again."""
        found = self._call(kind, lambda r: r.get(key))
        if found is None:
            if not self._down_until:
                LOOKUPS.labels(kind, "miss").inc()
            return None
        try:
            value = decode(found)  # type: ignore[arg-type]
        except Unreadable as exc:
            LOOKUPS.labels(kind, "unreadable").inc()
            log.warning("query cache: deleted an entry that cannot be read back (%s)", exc, extra={"key": key})
            self._call(None, lambda r: r.delete(key))
            return None
        LOOKUPS.labels(kind, "hit").inc()
        return value

    def _set(self, key: str, value: bytes, ttl_s: int) -> None:
        if not self._down_until:
            self._call(None, lambda r: r.set(key, value, ex=ttl_s))

    # --- vectors (a VectorShelf) ------------------------------------------------------------------

    def _vector_key(self, made_by: ModelIdentity, kind: str, content: str) -> str:
        return f"{self.keys}vec:{digest(made_by.model, made_by.pretrained, kind, content)}"

    def find_vector(self, made_by: ModelIdentity, kind: str, content: str) -> np.ndarray | None:
        """The vector ``made_by`` made of a normalised text or an image digest, when kept."""
        key = self._vector_key(made_by, kind, content)
        return self._get("vector", key, lambda data: decode_vector(data, made_by))

    def keep_vector(self, made_by: ModelIdentity, kind: str, content: str, vector: np.ndarray) -> None:
        """Keep a vector under the model that made it (as the service's answer named it)."""
        self._set(self._vector_key(made_by, kind, content), encode_vector(made_by, vector), VECTOR_TTL_S)

    def embedder(self, inner: Embedder, expected: ServiceIdentity) -> CachingEmbedder:
        """``inner`` (one query's) with its vectors cached under the model that made each one."""
        return CachingEmbedder(self, inner, expected)

    # --- result pages --------------------------------------------------------------------------

    def _generation(self) -> int | None:
        found = self._call("results", lambda r: r.get(self.prefix + GENERATION))
        if found is None:
            return None if self._down_until else 0
        try:
            return int(found)  # type: ignore[arg-type]
        except ValueError:
            return None  # not a counter: cache no page until forget_pages makes it one

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
        words: Sequence[str] = (),
        made_by: ModelIdentity | None = None,
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
        generation = self._generation()  # read before computing: a removal after it moves later keys on
        if generation is None:
            return compute()
        model = None if made_by is None else (made_by.model, made_by.pretrained)
        key = f"{self.keys}res:" + digest(
            self.store,
            collection,
            count,
            generation,
            model,
            hashlib.sha256(vector_bytes(vector)).hexdigest(),
            list(words),
            asdict(filters),
            sorted(exclude_ids),
            offset,
            limit,
        )
        found = self._get("results", key, decode_page)
        if found is not None:
            return found
        hits = compute()
        self._set(key, encode_page(hits), self.results_ttl_s)
        return hits
