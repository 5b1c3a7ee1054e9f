"""The Redis query cache: a repeated query with and without it, and the hit ratio of a query log.

``python -m bench cache [--quick] [--points N] [--queries Q] [--log L] [--distinct D]``

* uncached: the app's search function (:func:`search_app.search.engine.search`) without a cache: the text
  goes to the real embedding service (``python -m embedding``, ViT-B-32 with random weights: the
  same compute as trained weights) over HTTP, then embedded Qdrant returns the top 10 with payloads.
* cached: the same call with the Redis cache (:mod:`search_app.search.cache`) on the Redis at
  REDIS_URL (default the local one), each text asked once before, so the vector and the page come
  from Redis; the collection's point count is still read per query (the invalidation signal).
  Uncached and cached calls alternate, text by text, so both see the same machine load.
* hit ratio: a query log of L queries over D distinct texts drawn with Zipf-like popularity (a few
  texts asked often, most rarely), replayed from an empty cache: the share of queries whose page of
  results came from Redis.

The store holds N synthetic points (as in ``bench query``) on /dev/shm; the benchmark's keys live
under their own prefix and are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import redis
from prometheus_client import REGISTRY

from bench.query import MODEL, TOP_K, fill, open_index, percentile, query_texts, timed_ms
from dyimages_common.embeddings.client import EmbeddingClient
from search_app.search.cache import QueryCache, ServiceIdentity
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import ServiceEmbedder
from testkit.embedding import run_embedding_service


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench cache")
    parser.add_argument("--quick", action="store_true", help="a smaller store and fewer queries (a minute or two)")
    parser.add_argument("--points", type=int, default=0, help="points in the store (default 10,000; quick 2,000)")
    parser.add_argument("--queries", type=int, default=0, help="measured repeated queries (default 100; quick 30)")
    parser.add_argument("--log", type=int, default=0, help="queries in the replayed log (default 1,000; quick 200)")
    parser.add_argument("--distinct", type=int, default=0, help="distinct texts in the log (default 200; quick 50)")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads")
    args = parser.parse_args(argv)
    args.points = args.points or (2_000 if args.quick else 10_000)
    args.queries = args.queries or (30 if args.quick else 100)
    args.log = args.log or (200 if args.quick else 1_000)
    args.distinct = args.distinct or (50 if args.quick else 200)
    return args


METRIC = "dyimages_app_query_cache_total"


def query_log(texts: list[str], length: int, seed: int = 3) -> list[str]:
    """``length`` queries over ``texts``, the k-th most popular text with weight 1/k (Zipf, s=1)."""
    weights = 1.0 / np.arange(1, len(texts) + 1)
    picks = np.random.default_rng(seed).choice(len(texts), size=length, p=weights / weights.sum())
    return [texts[i] for i in picks]


def _results_lookups() -> dict[str, float]:
    return {
        outcome: REGISTRY.get_sample_value(METRIC, {"kind": "results", "outcome": outcome}) or 0.0
        for outcome in ("hit", "miss", "unavailable")
    }


def run(argv: list[str]) -> dict:
    args = _parse(argv)
    texts = query_texts(5 + args.queries + args.distinct)
    warm, measured, distinct = texts[:5], texts[5 : 5 + args.queries], texts[5 + args.queries :]
    log = query_log(distinct, args.log)
    prefix = f"bench:{uuid.uuid4().hex[:12]}:"
    result: dict = {"benchmark": "cache", "model": f"{MODEL} (random weights)", "device": "cpu"}

    with (
        tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp,
        tempfile.TemporaryDirectory(prefix="bench-cache-qdrant-", dir="/dev/shm") as qdrant_dir,
    ):
        root = Path(tmp)
        client = open_index(Path(qdrant_dir) / "qdrant")
        fill(client, None, 0, args.points, np.random.default_rng(42))
        service_env = {
            "MODEL_NAME": MODEL,
            "MODEL_PRETRAINED": "none",
            "EMBEDDING_TORCH_THREADS": str(args.threads),
            "LOG_LEVEL": "WARNING",
        }
        cache = QueryCache(args.redis_url, store=qdrant_dir, prefix=prefix)
        try:
            with (
                run_embedding_service(root, root, **service_env) as service,
                EmbeddingClient(service.url, timeout=120) as embedding,
            ):
                plain = ServiceEmbedder(embedding)
                cached = cache.embedder(plain, ServiceIdentity(embedding))

                def ask(text: str, with_cache: bool) -> list:
                    if with_cache:
                        return search(client, cached, Query(text=text), limit=TOP_K, cache=cache)
                    return search(client, plain, Query(text=text), limit=TOP_K)

                for text in warm + measured:  # warm-up; every measured text is now in Redis
                    ask(text, with_cache=True)
                    ask(text, with_cache=False)
                uncached_ms, cached_ms = [], []
                for text in measured:
                    elapsed, hits = timed_ms(lambda t=text: ask(t, with_cache=False))
                    uncached_ms.append(elapsed)
                    elapsed, cached_hits = timed_ms(lambda t=text: ask(t, with_cache=True))
                    cached_ms.append(elapsed)
                    if [h.sha256 for h in cached_hits] != [h.sha256 for h in hits]:  # type: ignore[union-attr]
                        raise RuntimeError(f"the cached page differs from the uncached one for {text!r}")

                before = _results_lookups()
                started = time.perf_counter()
                for text in log:
                    ask(text, with_cache=True)
                replay_s = time.perf_counter() - started
                after = _results_lookups()
        finally:
            with redis.Redis.from_url(args.redis_url) as server:
                for key in server.scan_iter(f"{prefix}*"):
                    server.delete(key)
            cache.close()
            client.close()

    hits, misses, unavailable = (after[o] - before[o] for o in ("hit", "miss", "unavailable"))
    if unavailable:
        raise RuntimeError(f"Redis at {args.redis_url} did not answer {unavailable:.0f} lookups")
    uncached_p50, cached_p50 = statistics.median(uncached_ms), statistics.median(cached_ms)
    result |= {
        "points": args.points,
        "queries": len(measured),
        "threads": args.threads,
        "uncached_p99_ms": percentile(uncached_ms, 99),
        "cached_p99_ms": percentile(cached_ms, 99),
        "log_queries": len(log),
        "log_distinct": len(set(log)),
        "log_replay_s": round(replay_s, 2),
        "uncached_p50_ms": round(uncached_p50, 2),
        "cached_p50_ms": round(cached_p50, 2),
        "speedup": round(uncached_p50 / cached_p50, 1),
        "hit_ratio": round(hits / (hits + misses), 3),
    }
    return result
