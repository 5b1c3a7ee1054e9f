"""The Redis query cache measured as a cache: ``python -m bench cache [--quick] [--points N] [--queries Q]
[--log L] [--distinct D] [--fits F] [--runtime R]``.

The app's own search (:func:`search_app.search.engine.search`) with its Redis cache
(:mod:`search_app.search.cache`) in front of the real embedding service (``python -m embedding``,
ViT-B-32 with random weights: the compute of trained weights; its CPU default runtime, ONNX, unless
``--runtime``) and an embedded store of N synthetic points (as in ``bench query``). The cache talks
to a ``redis-server`` the benchmark starts for itself, so nobody else's keys count.

* ``miss_p50_ms``: texts never asked before, cache on: the vector and the page are missed,
  computed and stored;
* ``hit_p50_ms``: texts asked once before; every timed call must be a hit of both the vector and
  the page on the cache's own counters (``dyimages_app_query_cache_total``), and the page must
  equal the one the miss computed: anything else fails the run. Miss and hit calls alternate;
* ``speedup``: miss p50 ÷ hit p50 (a hit does a subset of a miss's work: below 1 fails);
* ``hit_ratio``: a log of L queries over D distinct texts, the k-th most asked with weight 1/k
  (Zipf), replayed once from an empty cache: result-page hits ÷ lookups on the cache's own
  counters. For the replay Redis is capped (``maxmemory``, ``allkeys-lru``, as a production Redis
  with a memory cap) at its empty size plus ``--fits`` of the log's working set (the ``MEMORY
  USAGE`` of its distinct texts' vectors and pages, asked once each first), so entries are evicted:
  ``evicted_keys`` is Redis' own count.
  ``log_ideal_hit_ratio`` is what a cache that never evicts would give (1 - distinct ÷ queries).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import redis
from prometheus_client import REGISTRY

from bench.encoder import resolved_runtime
from bench.figures import READY_S, Limit
from bench.points import fill, open_index
from bench.query import MODEL, TOP_K, percentile, timed_ms
from bench.texts import query_texts
from dyimages_common.embeddings.client import EmbeddingClient
from search_app.search.cache import QueryCache, ServiceIdentity
from search_app.search.engine import search
from search_app.search.model import Hit, Query
from search_app.search.vectors import ServiceEmbedder
from testkit.embedding import run_embedding_service
from testkit.procs import free_port, stop

METRIC = "dyimages_app_query_cache_total"
SERVICE = {"MODEL_NAME": MODEL, "MODEL_PRETRAINED": "none"}
REQUIRED = ("miss_p50_ms", "hit_p50_ms", "speedup", "hit_ratio", "evicted_keys", "points", "queries", "log_queries")
LIMITS = {"speedup": Limit(at_least=1.0, why="a hit does a subset of a miss's work")}


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench cache")
    parser.add_argument("--quick", action="store_true", help="a smaller store and fewer queries (a minute or two)")
    parser.add_argument("--points", type=int, default=0, help="points in the store (default 10,000; quick 2,000)")
    parser.add_argument("--queries", type=int, default=0, help="timed misses and hits (default 100; quick 30)")
    parser.add_argument("--log", type=int, default=0, help="queries in the replayed log (default 2,000; quick 300)")
    parser.add_argument("--distinct", type=int, default=0, help="distinct texts in the log (default 400; quick 80)")
    parser.add_argument("--fits", type=float, default=0.5, help="share of the log's distinct texts the cap holds")
    parser.add_argument("--runtime", choices=("auto", "onnx", "torch"), default="auto", help="EMBEDDING_RUNTIME")
    args = parser.parse_args(argv)
    args.points = args.points or (2_000 if args.quick else 10_000)
    args.queries = args.queries or (30 if args.quick else 100)
    args.log = args.log or (300 if args.quick else 2_000)
    args.distinct = args.distinct or (80 if args.quick else 400)
    return args


@contextlib.contextmanager
def own_redis() -> Iterator[str]:
    """A redis-server of this benchmark's own (no persistence, LRU eviction once capped); its URL."""
    port = free_port()
    command = ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"]
    process = subprocess.Popen(
        [*command, "--maxmemory-policy", "allkeys-lru"],
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        with redis.Redis.from_url(url) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    client.ping()
                    break
                except redis.ConnectionError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError("redis-server did not start") from None
                    time.sleep(0.05)
        yield url
    finally:
        stop(process)  # type: ignore[arg-type]


def query_log(texts: list[str], length: int, seed: int = 3) -> list[str]:
    """``length`` queries over ``texts``, the k-th most popular text with weight 1/k (Zipf, s=1)."""
    weights = 1.0 / np.arange(1, len(texts) + 1)
    picks = np.random.default_rng(seed).choice(len(texts), size=length, p=weights / weights.sum())
    return [texts[i] for i in picks]


def lookups() -> dict[tuple[str, str], float]:
    """The cache's own counters: (kind, outcome) -> count so far in this process."""
    return {
        (kind, outcome): REGISTRY.get_sample_value(METRIC, {"kind": kind, "outcome": outcome}) or 0.0
        for kind in ("vector", "results")
        for outcome in ("hit", "miss", "unavailable")
    }


def counted(before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    return {key: value - before[key] for key, value in lookups().items()}


def run(argv: list[str]) -> dict[str, object]:
    args = _parse(argv)
    texts = query_texts(5 + 2 * args.queries + args.distinct)
    warm, fresh = texts[:5], texts[5 : 5 + args.queries]
    repeated, distinct = texts[5 + args.queries : 5 + 2 * args.queries], texts[5 + 2 * args.queries :]
    log = query_log(distinct, args.log)
    extra = {} if args.runtime == "auto" else {"EMBEDDING_RUNTIME": args.runtime}
    with (
        tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp,
        tempfile.TemporaryDirectory(prefix="bench-cache-qdrant-", dir="/dev/shm") as qdrant_dir,
        own_redis() as redis_url,
        redis.Redis.from_url(redis_url) as server,
    ):
        root = Path(tmp)
        index, _ = open_index(Path(qdrant_dir) / "store", MODEL)
        fill(index, None, 0, args.points, MODEL)
        cache = QueryCache(redis_url, store=qdrant_dir)
        try:
            with (
                run_embedding_service(
                    root, root, ready_timeout_s=READY_S, MODEL_NAME=MODEL, MODEL_PRETRAINED="none", **extra
                ) as service,
                EmbeddingClient(service.url, timeout=120) as embedding,
            ):
                cached = cache.embedder(ServiceEmbedder(embedding), ServiceIdentity(embedding))

                def ask(text: str) -> list[Hit]:
                    return search(index, cached, Query(text=text), limit=TOP_K, cache=cache)

                for text in warm + repeated:  # warm-up; every text of the hit phase is now cached
                    ask(text)
                miss_ms, hit_ms = [], []
                for fresh_text, repeated_text in zip(fresh, repeated, strict=True):
                    before = lookups()
                    elapsed, _ = timed_ms(lambda t=fresh_text: ask(t))
                    if counted(before)[("results", "miss")] != 1:
                        raise RuntimeError(f"{fresh_text!r} was not a miss: {counted(before)}")
                    miss_ms.append(elapsed)
                    before = lookups()
                    elapsed, hits = timed_ms(lambda t=repeated_text: ask(t))
                    seen = counted(before)
                    if seen[("vector", "hit")] != 1 or seen[("results", "hit")] != 1 or sum(seen.values()) != 2:
                        raise RuntimeError(f"a call of the hit phase was not a hit: {repeated_text!r}: {seen}")
                    hit_ms.append(elapsed)
                    if len(hits) != TOP_K:  # type: ignore[arg-type]
                        raise RuntimeError(f"expected {TOP_K} results, got {hits!r}")
                server.flushall()  # the log's working set: each distinct text once, uncapped
                for text in dict.fromkeys(log):
                    ask(text)
                working = sum(server.memory_usage(key) or 0 for key in server.scan_iter(count=1000))
                server.flushall()  # the log replays from an empty cache, capped below its working set
                cap = int(server.info("memory")["used_memory"] + args.fits * working)
                server.config_set("maxmemory", cap)
                server.config_resetstat()
                before, started = lookups(), time.perf_counter()
                for text in log:
                    ask(text)
                replay_s = time.perf_counter() - started
                replay = counted(before)
                evicted = int(server.info("stats")["evicted_keys"])
        finally:
            cache.close()
            index.close()
    if replay[("results", "unavailable")] or replay[("vector", "unavailable")]:
        raise RuntimeError(f"Redis did not answer every lookup: {replay}")
    miss_p50, hit_p50 = statistics.median(miss_ms), statistics.median(hit_ms)
    page_lookups = replay[("results", "hit")] + replay[("results", "miss")]
    vector_lookups = replay[("vector", "hit")] + replay[("vector", "miss")]
    return {
        "model": f"{MODEL} (random weights)",
        "runtime": resolved_runtime(args.runtime),
        "points": args.points,
        "queries": len(fresh),
        "miss_p50_ms": round(miss_p50, 2),
        "miss_p99_ms": percentile(miss_ms, 99),
        "hit_p50_ms": round(hit_p50, 2),
        "hit_p99_ms": percentile(hit_ms, 99),
        "speedup": round(miss_p50 / hit_p50, 1),
        "log_queries": len(log),
        "log_distinct": len(set(log)),
        "hit_ratio": round(replay[("results", "hit")] / page_lookups, 3),
        "vector_hit_ratio": round(replay[("vector", "hit")] / vector_lookups, 3),
        "log_ideal_hit_ratio": round(1 - len(set(log)) / len(log), 3),
        "evicted_keys": evicted,
        "cap_fits": args.fits,
        "cap_kib": round(cap / 1024),
        "working_set_kib": round(working / 1024),
        "log_replay_s": round(replay_s, 2),
    }
