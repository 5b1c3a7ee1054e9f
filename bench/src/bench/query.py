"""Query latency: a text query through the app to its top 10, against the raw encoder plus the raw store search.

``python -m bench query [--quick] [--points N] [--queries Q] [--runtime onnx|torch] [--browser-queries B]
[--info-points M]``

* app: the app's own search function (:func:`search_app.search.engine.search`, no cache): the text
  goes to the real embedding service (``python -m embedding``, ViT-B-32 with random weights: the
  compute of trained weights; ``--runtime``, default ONNX, the service's CPU default) over HTTP,
  then the store returns the top 10 with payloads. Every text is distinct, so nothing is cached.
* reference, per text: the raw encoder on the service's runtime (:class:`bench.encoder.EncoderWorker`:
  the same model, threads and token cut, tokenised before the clock, in a process of its own
  session) plus the raw store search (the engine's own query, top 10 with payloads, no filter, on
  the same store) for that text's vector; the two times summed. ``ratio`` is the app's p50 over the
  reference's p50 and ``overhead_ms`` their difference: what HTTP, the service and the app add. The
  reference is a strict subset of the app's work, so a ratio below 1 (its interquartile range of
  per-text ratios below 1 too) fails the run.
  ``ratio_iqr`` is the spread of the per-text ratios. App and reference alternate text by text
  (who goes first alternating too, a short pause before each timed call).
* browser (information): the app served by ``streamlit run``, headless Chromium types each query;
  Enter until all 10 thumbnails are loaded.
* info points (information): the app's query at M points.

The store (:mod:`bench.points`) holds N synthetic points in an embedded folder on /dev/shm.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from bench import query_api
from bench.encoder import EncoderWorker
from bench.figures import READY_S, Limit
from bench.points import COLLECTION, fill, open_index, raw_search_ms
from bench.query_api import api_env, api_figures, api_times
from bench.texts import query_texts
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.store.engine import Engine
from dyimages_common.store.protocol import ImageStore
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import ServiceEmbedder
from testkit.browser import chromium, search_in_browser, streamlit_app
from testkit.embedding import embedding_env, run_embedding_service

MODEL = "ViT-B-32"
TOP_K = 10
SETTLE_S = 0.05  # pause before each timed call (outside the clock)
LIMITS = {
    "ratio": Limit(
        at_least=1.0, why="the raw encoder and the raw store search are a subset of the query", spread="ratio_iqr"
    )
}
LIMITS |= query_api.LIMITS


def REQUIRED(figures: dict[str, Any]) -> list[str]:
    names = ["points", "queries", "p50_ms", "p99_ms", "reference_p50_ms", "encoder_p50_ms", "store_p50_ms"]
    names += ["ratio", "ratio_iqr", "overhead_ms", *query_api.FIELDS]
    if figures.get("browser_queries"):
        names += ["browser_p50_ms", "browser_max_ms"]
    return names


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench query")
    parser.add_argument("--quick", action="store_true", help="fewer queries (a few minutes)")
    parser.add_argument("--points", type=int, default=10_000, help="points in the store (default 10,000)")
    parser.add_argument("--info-points", type=int, default=0, help="also the app's query at this size")
    parser.add_argument("--queries", type=int, default=0, help="measured queries (default 200, quick 30)")
    parser.add_argument("--browser-queries", type=int, default=None, help="browser queries (default 10, quick 3)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="model threads, both sides")
    parser.add_argument("--runtime", choices=("onnx", "torch"), default="onnx", help="the service's and reference's")
    args = parser.parse_args(argv)
    args.queries = args.queries or (30 if args.quick else 200)
    if args.browser_queries is None:
        args.browser_queries = 3 if args.quick else 10
    return args


def timed_ms(call: Callable[[], object]) -> tuple[float, object]:
    started = time.perf_counter()
    value = call()
    return (time.perf_counter() - started) * 1000, value


def percentile(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1)


def measure(
    index: ImageStore, engine: Engine, embedding: EmbeddingClient, encoder: EncoderWorker, texts: list[str]
) -> dict[str, list[float]]:
    """Per text: the app's query, then (or first, every other text) the raw encoder and the raw search."""
    embedder = ServiceEmbedder(embedding)
    collection = index.serving() or COLLECTION
    times: dict[str, list[float]] = {"app": [], "encoder": [], "store": []}

    def app(text: str) -> None:
        time.sleep(SETTLE_S)
        elapsed, hits = timed_ms(lambda: search(index, embedder, Query(text=text), limit=TOP_K))
        if len(hits) != TOP_K:  # type: ignore[arg-type]
            raise RuntimeError(f"expected {TOP_K} results, got {hits!r}")
        times["app"].append(elapsed)

    def reference(text: str) -> None:
        time.sleep(SETTLE_S)
        elapsed, vector = encoder.call("text_timed", text)  # timed in the worker, tokenised before the clock
        times["encoder"].append(float(elapsed))
        times["store"].append(raw_search_ms(engine, collection, np.asarray(vector), TOP_K))

    for number, text in enumerate(texts):
        for side in (app, reference) if number % 2 == 0 else (reference, app):
            side(text)
    return times


def browser_ms(env: dict[str, str], log_dir: Path, texts: list[str]) -> list[float]:
    with streamlit_app(env, log_dir / "streamlit.log") as url, chromium() as driver:
        search_in_browser(driver, url, "warm-up: a photo", TOP_K)
        return [search_in_browser(driver, url, text, TOP_K) * 1000 for text in texts]


def figures_of(times: dict[str, list[float]]) -> dict[str, Any]:
    reference = [e + s for e, s in zip(times["encoder"], times["store"], strict=True)]
    app_p50, reference_p50 = statistics.median(times["app"]), statistics.median(reference)
    per_text = [a / r for a, r in zip(times["app"], reference, strict=True)]
    return {
        "queries": len(times["app"]),
        "p50_ms": round(app_p50, 1),
        "p99_ms": percentile(times["app"], 99),
        "reference_p50_ms": round(reference_p50, 1),
        "reference_p99_ms": percentile(reference, 99),
        "encoder_p50_ms": round(statistics.median(times["encoder"]), 1),
        "store_p50_ms": round(statistics.median(times["store"]), 1),
        "store_p99_ms": percentile(times["store"], 99),
        "ratio": round(app_p50 / reference_p50, 3),
        "ratio_iqr": [round(float(q), 3) for q in np.percentile(per_text, [25, 75])],
        "overhead_ms": round(app_p50 - reference_p50, 1),
    }


def run(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    # The service waits passively in OpenMP and ONNX Runtime unless told otherwise; the reference inherits it.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    texts = query_texts(5 + args.queries + args.browser_queries + 30)
    warm, measured = texts[:5], texts[5 : 5 + args.queries]
    browser_texts = texts[5 + args.queries : 5 + args.queries + args.browser_queries]
    info_texts = texts[5 + args.queries + args.browser_queries :]
    result: dict[str, Any] = {"model": f"{MODEL} (random weights)", "runtime": args.runtime, "points": args.points}
    with (
        tempfile.TemporaryDirectory(prefix="bench-query-") as tmp,
        tempfile.TemporaryDirectory(prefix="bench-query-store-", dir="/dev/shm") as store_dir,
    ):
        root, store_path = Path(tmp), Path(store_dir) / "store"
        images_dir = root / "images"
        images_dir.mkdir()
        service_env = {
            "MODEL_NAME": MODEL,
            "MODEL_PRETRAINED": "none",
            "EMBEDDING_TORCH_THREADS": str(args.threads),
            "EMBEDDING_RUNTIME": args.runtime,
            "LOG_LEVEL": "WARNING",
        }
        started = time.perf_counter()
        index, engine = open_index(store_path, MODEL)
        fill(index, images_dir if args.browser_queries else None, 0, args.points, MODEL)
        print(f"filled {args.points} points in {time.perf_counter() - started:.0f} s", flush=True)
        with (
            run_embedding_service(images_dir, root, ready_timeout_s=READY_S, **service_env) as service,
            EncoderWorker(args.runtime, {**embedding_env(images_dir, 8000), **service_env}, args.threads) as encoder,
            EmbeddingClient(service.url, timeout=120) as embedding,
        ):
            measure(index, engine, embedding, encoder, warm)  # warm-up: both models, the connection, the store
            result |= figures_of(measure(index, engine, embedding, encoder, measured))
            index.close()  # an embedded folder is one process's at a time: the API opens it now (bench.query_api)
            env = api_env(store_path, COLLECTION, images_dir, service.url)
            result |= api_figures(api_times(env, root / "api.log", measured, warm), result["reference_p50_ms"])
            index, engine = open_index(store_path, MODEL)
            print(f"{args.points} points: {result}", flush=True)
            result |= {"browser_queries": args.browser_queries, "threads": args.threads}
            if args.browser_queries:
                index.close()  # an embedded folder is one process's at a time: the app opens it now
                env = {
                    "QDRANT_PATH": str(store_path),
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
                index, engine = open_index(store_path, MODEL)
            if args.info_points > args.points:
                fill(index, None, args.points, args.info_points, MODEL)
                embedder = ServiceEmbedder(embedding)
                info = [
                    timed_ms(lambda t=t: search(index, embedder, Query(text=t), limit=TOP_K))[0] for t in info_texts
                ]
                result |= {
                    "info_points": args.info_points,
                    "info_p50_ms": round(statistics.median(info), 1),
                    "info_p99_ms": percentile(info, 99),
                }
        with contextlib.suppress(Exception):
            index.close()
    return result
