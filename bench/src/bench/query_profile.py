"""Where an uncached text query spends its time in the app: ``python -m bench.query_profile [POINTS] [QUERIES]``.

A diagnostic beside ``bench query`` (not a benchmark: no reference, no ratio): the store of
:mod:`bench.points` with POINTS points (default 10,000), the real embedding service on its CPU default
runtime, QUERIES distinct texts (default 60) through the app's own ``search()`` under ``cProfile``.
Prints the wall and CPU milliseconds per query, the raw store search's p50 on the same store, and the
functions with the most cumulative time: what the app adds beyond the encoder's round trip and the
store's search shows there.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench.figures import READY_S
from bench.points import fill, open_index, raw_search_ms
from bench.texts import query_texts
from dyimages_common.embeddings.client import EmbeddingClient
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import ServiceEmbedder
from testkit.embedding import run_embedding_service

MODEL = "ViT-B-32"


def main(points: int, queries: int) -> None:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with (
        tempfile.TemporaryDirectory(dir="/dev/shm") as store_dir,
        tempfile.TemporaryDirectory() as tmp,
    ):
        index, engine = open_index(Path(store_dir) / "store", MODEL)
        fill(index, None, 0, points, MODEL)
        env = {"MODEL_NAME": MODEL, "MODEL_PRETRAINED": "none"}
        with (
            run_embedding_service(Path(tmp), Path(tmp), ready_timeout_s=READY_S, **env) as service,
            EmbeddingClient(service.url) as client,
        ):
            embedder = ServiceEmbedder(client)
            texts = query_texts(queries + 5)
            for text in texts[:5]:  # warm-up
                search(index, embedder, Query(text=text))
            vector = client.embed_texts(["a dog in the snow"])[0]
            raw = [raw_search_ms(engine, index.serving() or "images", vector, 10) for _ in range(30)]
            profile = cProfile.Profile()
            wall, cpu = time.perf_counter(), time.process_time()
            profile.enable()
            for text in texts[5:]:
                search(index, embedder, Query(text=text))
            profile.disable()
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        index.close()
    print(f"{points} points, {queries} queries, load {os.getloadavg()[0]:.2f}")
    print(f"per query: {wall / queries * 1000:.1f} ms wall, {cpu / queries * 1000:.1f} ms of this process's CPU")
    print(f"raw store search p50: {statistics.median(raw):.1f} ms")
    pstats.Stats(profile).sort_stats("cumulative").print_stats(30)
    pstats.Stats(profile).sort_stats("tottime").print_stats(15)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 10_000, int(sys.argv[2]) if len(sys.argv) > 2 else 60)
