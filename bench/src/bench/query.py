"""Query latency: a text query to its top-10 results, beside the raw text encoder, in one run.

``python -m bench query [--quick] [--points N] [--info-points M] [--queries Q] [--browser-queries B]``

* query: the app's own search function (:func:`search_app.search.engine.search`): the text goes to the real
  embedding service (``python -m embedding``, ViT-B-32 with random weights: the same compute as
  trained weights) over HTTP, then embedded Qdrant returns the top 10 with payloads. Every query
  text is distinct, so no cache helps; warm (after warm-up queries).
* raw text: the same model's OpenCLIP text encoder run exactly as ``bench embedding`` runs it
  (:class:`bench.embedding.InProcessWorker`): in a child process with its own session, the same
  torch threads and the service's OpenMP wait policy (PASSIVE), ``encode_text`` on the tokenised
  text, normalised; the same texts, alternating query by query with the service so both see the
  same machine load. The service runs the same runtime (``--runtime``, default torch: the service's
  CPU default is ONNX Runtime, faster than the torch reference). ``ratio`` is query p50 over raw
  p50: what HTTP, the service and Qdrant add (a busy-waiting reference in this process once fought
  the service for the cores and made the ratio come out below 1, as if they cost less than nothing).
* browser (information): the app served by ``streamlit run``, headless Chromium types each query;
  time from Enter until all 10 thumbnails are loaded in the page, at N points.
* info points (information): the same query path at M points (embedded mode is brute force).

The store holds N synthetic points (normalised random vectors written through the store seam with the
indexer's own write, payloads from the point model, a real tiny JPEG behind each for the thumbnails) in
qdrant-client's embedded on-disk mode.
Its folder is on /dev/shm: embedded mode commits every point to SQLite, ~10 ms each on this
machine's disk, which would make filling 100,000 points take a quarter of an hour; searching is
the same (embedded mode searches in memory), only the fill is faster.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from bench.embedding import MODEL, InProcessWorker  # the same model on both sides
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.builds import ensure_serving
from dyimages_common.store.factory import open_store
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import ImageVector
from search_app.search.engine import search, search_vector
from search_app.search.model import Query
from search_app.search.vectors import ServiceEmbedder
from testkit.browser import chromium, search_in_browser, streamlit_app
from testkit.embedding import run_embedding_service
from testkit.images import jpeg

COLLECTION = "images"
DIM = 512
TOP_K = 10
FILL_BATCH = 2000
SETTLE_S = 0.05  # pause before each timed call (outside the clock)

_COLOURS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "grey", "pink"]
_THINGS = ["bicycle", "cat", "dog", "car", "boat", "house", "tree", "bird", "horse", "chair", "lamp", "kite"]
_PLACES = ["on a beach", "in a forest", "in the snow", "on a street", "at sunset", "in a kitchen", "on a hill"]


def query_texts(count: int) -> list[str]:
    """Distinct, plausible query texts (distinct so that no cache answers)."""
    combos = itertools.product(_COLOURS, _THINGS, _PLACES)
    texts = [f"a {colour} {thing} {place}" for colour, thing, place in combos]
    if count > len(texts):
        raise ValueError(f"at most {len(texts)} distinct queries")
    order = np.random.default_rng(7).permutation(len(texts))
    return [texts[i] for i in order[:count]]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench query")
    parser.add_argument("--quick", action="store_true", help="fewer queries, no info run (a few minutes)")
    parser.add_argument("--points", type=int, default=10_000, help="points in the store (default 10,000)")
    parser.add_argument("--info-points", type=int, default=None, help="also at this size (default 100,000; quick 0)")
    parser.add_argument("--queries", type=int, default=0, help="measured queries (default 100, quick 30)")
    parser.add_argument("--browser-queries", type=int, default=None, help="browser queries (default 10, quick 3)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads, both sides")
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="the service's EMBEDDING_RUNTIME (default torch, the reference's own, so the ratio compares like "
        "with like; onnx is the service's CPU default, faster than the torch reference)",
    )
    args = parser.parse_args(argv)
    args.queries = args.queries or (30 if args.quick else 100)
    if args.info_points is None:
        args.info_points = 0 if args.quick else 100_000
    if args.browser_queries is None:
        args.browser_queries = 3 if args.quick else 10
    return args


def open_index(qdrant_path: Path) -> ImageStore:
    """The benchmark's index in an embedded folder, through the store seam, with its first collection."""
    index = open_store(load_settings(QdrantSettings, qdrant_path=qdrant_path, qdrant_collection=COLLECTION))
    ensure_serving(index, dim=DIM, model=MODEL, pretrained=None)
    return index


def fill(index: ImageStore, images_dir: Path | None, start: int, stop: int, rng: np.random.Generator) -> None:
    """Points ``start`` to ``stop``: random unit vectors, written by the indexer's own write through the store
    seam (payloads from the point model, conditional upserts), tiny JPEGs when asked."""
    now = datetime.now(UTC)
    collection = index.serving() or COLLECTION
    for first in range(start, stop, FILL_BATCH):
        last = min(first + FILL_BATCH, stop)
        vectors = rng.standard_normal((last - first, DIM)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        points = []
        for offset, number in enumerate(range(first, last)):
            data = jpeg(number, (64, 48)) if images_dir is not None else str(number).encode()
            sha = sha256_hex(data)
            path = stored_path(sha, "jpg")
            if images_dir is not None:
                write_atomic(images_dir, path, data)
            event = ImageDownloaded(
                sha256=sha,
                path=path,
                url=f"https://site{number % 7}.example/{number}.jpg",
                content_type="image/jpeg",
                width=64,
                height=48,
                bytes=len(data),
                downloaded_at=now,
            )
            points.append(ImageVector(sha, vectors[offset], [event]))
        index.write(collection, points, model=MODEL)


def timed_ms(call: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = call()
    return (time.perf_counter() - started) * 1000, value


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def measure(
    client: ImageStore, embedding: EmbeddingClient, encoder: InProcessWorker | None, texts: list[str]
) -> dict[str, list[float]]:
    """Alternate the app's query path, the raw encoder (its own process) and a Qdrant-only search, text by text.

    The query path and the raw encoder take turns going first, and each timed call starts after a
    short pause, so neither always follows the other's work (nor this process's Qdrant search,
    whose BLAS threads may still be spinning) onto a busy CPU.
    """
    embedder = ServiceEmbedder(embedding)
    probe = np.random.default_rng(1).standard_normal(DIM).astype(np.float32)
    times: dict[str, list[float]] = {"query": [], "raw": [], "qdrant": []}

    def query(text: str) -> None:
        time.sleep(SETTLE_S)
        elapsed, hits = timed_ms(lambda: search(client, embedder, Query(text=text), limit=TOP_K))
        if len(hits) != TOP_K:  # type: ignore[arg-type]
            raise RuntimeError(f"expected {TOP_K} results, got {hits!r}")
        times["query"].append(elapsed)

    def raw(text: str) -> None:
        if encoder is not None:
            time.sleep(SETTLE_S)
            times["raw"].append(float(encoder.call("text_ms", text)))  # timed in the worker, as bench embedding does

    for number, text in enumerate(texts):
        for side in (query, raw) if number % 2 == 0 else (raw, query):
            side(text)
        time.sleep(SETTLE_S)
        times["qdrant"].append(timed_ms(lambda: search_vector(client, probe, limit=TOP_K))[0])
    return times


def browser_ms(env: dict[str, str], log_dir: Path, texts: list[str]) -> list[float]:
    with streamlit_app(env, log_dir / "streamlit.log") as url, chromium() as driver:
        search_in_browser(driver, url, "warm-up: a photo", TOP_K)
        return [search_in_browser(driver, url, text, TOP_K) * 1000 for text in texts]


def run(argv: list[str]) -> dict:
    args = _parse(argv)
    # The service waits passively in OpenMP unless told otherwise; the reference worker inherits the same.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    texts = query_texts(5 + args.queries + args.browser_queries + 5 + min(args.queries, 30))
    warm, measured = texts[:5], texts[5 : 5 + args.queries]
    browser_texts = texts[5 + args.queries : 5 + args.queries + args.browser_queries]
    info_texts = texts[5 + args.queries + args.browser_queries :]
    rng = np.random.default_rng(42)
    result: dict = {"benchmark": "query", "model": f"{MODEL} (random weights)", "device": "cpu"}

    with (
        tempfile.TemporaryDirectory(prefix="bench-query-") as tmp,
        tempfile.TemporaryDirectory(prefix="bench-query-qdrant-", dir="/dev/shm") as qdrant_dir,
    ):
        root = Path(tmp)
        images_dir = root / "images"
        images_dir.mkdir()
        qdrant_path = Path(qdrant_dir) / "qdrant"
        service_env = {
            "MODEL_NAME": MODEL,
            "MODEL_PRETRAINED": "none",
            "EMBEDDING_TORCH_THREADS": str(args.threads),
            "EMBEDDING_RUNTIME": args.runtime,
            "LOG_LEVEL": "WARNING",
        }
        started = time.perf_counter()
        client = open_index(qdrant_path)
        fill(client, images_dir if args.browser_queries else None, 0, args.points, rng)
        print(f"filled {args.points} points in {time.perf_counter() - started:.0f} s", flush=True)
        encoder = InProcessWorker(args.threads, "cpu", "fp32")  # as bench embedding runs it on the CPU
        with (
            contextlib.closing(encoder),
            run_embedding_service(images_dir, root, **service_env) as service,
            EmbeddingClient(service.url, timeout=120) as embedding,
        ):
            measure(client, embedding, encoder, warm)  # warm-up: both models, HTTP connection, Qdrant
            times = measure(client, embedding, encoder, measured)
            p50, raw_p50 = statistics.median(times["query"]), statistics.median(times["raw"])
            result |= {
                "points": args.points,
                "queries": len(measured),
                "threads": args.threads,
                "p50_ms": round(p50, 1),
                "p99_ms": percentile(times["query"], 99),
                "raw_text_p50_ms": round(raw_p50, 1),
                "ratio": round(p50 / raw_p50, 3),
                "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
                "runtime": args.runtime,
                "raw_text_p99_ms": percentile(times["raw"], 99),
                "qdrant_p50_ms": round(statistics.median(times["qdrant"]), 1),
                "qdrant_p99_ms": percentile(times["qdrant"], 99),
            }
            print(f"{args.points} points: {result}", flush=True)
            if result["ratio"] < 1:
                print(
                    "warning: ratio below 1: the raw encoder measured slower than the whole query path, so the two "
                    "sides got different shares of a busy CPU; rerun on a quiet machine",
                    flush=True,
                )

            if args.browser_queries:
                client.close()  # embedded mode: one process at a time; the app opens the folder now
                env = {
                    "QDRANT_PATH": str(qdrant_path),
                    "QDRANT_COLLECTION": COLLECTION,
                    "IMAGES_DIR": str(images_dir),
                    "EMBEDDING_SERVICE_URL": service.url,
                    "APP_TOP_K": str(TOP_K),
                    "LOG_LEVEL": "WARNING",
                }
                browser = browser_ms(env, root, browser_texts)
                result |= {
                    "browser_p50_ms": round(statistics.median(browser), 1),
                    "browser_max_ms": round(max(browser), 1),
                }
                print(f"browser: {[round(b) for b in browser]} ms", flush=True)
                client = open_index(qdrant_path)

            if args.info_points > args.points:
                started = time.perf_counter()
                fill(client, None, args.points, args.info_points, rng)
                print(f"filled to {args.info_points} points in {time.perf_counter() - started:.0f} s", flush=True)
                measure(client, embedding, None, warm[:2])
                info = measure(client, embedding, None, info_texts)
                result |= {
                    "info_points": args.info_points,
                    "info_p50_ms": round(statistics.median(info["query"]), 1),
                    "info_p99_ms": percentile(info["query"], 99),
                    "info_qdrant_p50_ms": round(statistics.median(info["qdrant"]), 1),
                }
        client.close()
    return result
