"""The vector store through the seam, per engine, from 10,000 to a million points: the numbers behind the
README's library sizes.

``python -m bench vectorstore [--quick] [--engines E,..] [--sizes N,..] [--queries Q] [--vectors KIND] [--dir DIR]``

(``--vectors``: ``clustered``, the default, or ``uniform``.)

Engines: ``edge`` (Qdrant Edge, the embedded default), ``edge-sq8`` (Edge with int8 scalar
quantization), ``local`` (qdrant-client's pure-Python embedded mode), ``milvus`` (Milvus 2.3.5's
standalone server through pymilvus, in a virtual environment of its own: :mod:`bench.vectorstore_milvus`;
10,000 and 100,000, quick 10,000; its own fields, ``MILVUS_LINE``). Sizes per engine: Edge 10,000,
100,000 and 1,000,000 (``--quick``: 10,000 and 100,000, so the ``edge_100k_*`` fields are always there);
``edge-sq8`` 100,000 (and 1,000,000 without ``--quick``); ``local`` 10,000 (quick 2,000) only: its 100,000
took 44 s to open and 3.2 GB (docs/vector-store.md). ``--sizes`` sets one list for every engine.

For each engine and size, in a fresh folder under DIR (default: the system's temporary folder, on disk, as
QDRANT_PATH would be), :mod:`bench.vectorstore_sides` runs two processes of their own:

1. fill (the indexer's side): the collection made by ``ensure_serving`` (schema, payload indexes, model),
   N points written by the indexer's own conditional write in batches of 32 (``INDEXER_BATCH_SIZE``'s
   default), then ``settle()`` as an idle indexer does (Edge: ``optimize()``, the HNSW index);
2. search (the app's side): open the folder, then Q queries (default 100, quick 50) through the app's own
   ``search_vector``, top 10 with payloads, without a filter and with ``domains=site3.example,
   min_width=1024`` (one point in twelve).

This process computes the exact top 10 of each query with NumPy over the same vectors and filter.

Fields of each line (``engine``, ``points``, ``vectors``): ``insert_points_per_s``; ``settle_s`` (the
optimize after the burst); ``unsettled_p50_ms`` (a query before it); ``folder_mb`` (blocks on disk);
``open_s`` and ``open_cpu_s`` (a fresh process opens the store and counts); ``open_rss_mb``,
``peak_rss_mb`` (the search process; peak from ``getrusage``), ``fill_peak_rss_mb``; ``search_p50_ms``,
``search_p99_ms``, ``filtered_p50_ms``, ``filtered_p99_ms`` and their CPU p50s; ``recall_at_10`` and
``filtered_recall_at_10`` against the exact top 10. The last line has them all keyed
``<engine>_<field>_<N>``, and ``edge_100k_p50_ms``, ``edge_100k_filtered_p50_ms``,
``edge_100k_recall_at_10``, ``edge_100k_open_s``, ``edge_100k_rss_mb`` (peak RSS of the process holding the
store).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bench.vectorstore_data import DIM, TOP_K, exact_top, filter_mask, ms_at, query_vectors, recall, sha_of
from bench.vectorstore_milvus import measure_milvus
from testkit.procs import start_module, stop

ENGINES = ("edge", "edge-sq8", "local", "milvus")
SIZES = {
    "edge": (10_000, 100_000, 1_000_000),
    "edge-sq8": (100_000, 1_000_000),
    "local": (10_000,),
    "milvus": (10_000, 100_000),
}
QUICK_SIZES = {"edge": (10_000, 100_000), "edge-sq8": (100_000,), "local": (2_000,), "milvus": (10_000,)}
MILVUS_LINE = (
    "server_start_s",
    "insert_points_per_s",
    "index_s",
    "load_s",
    "server_rss_mb",
    "folder_mb",
    "search_p50_ms",
    "search_p99_ms",
    "filtered_p50_ms",
    "filtered_p99_ms",
    "transport_p50_ms",
    "recall_at_10",
    "filtered_recall_at_10",
)
HEADLINE = {
    "edge_100k_p50_ms": "search_p50_ms",
    "edge_100k_filtered_p50_ms": "filtered_p50_ms",
    "edge_100k_recall_at_10": "recall_at_10",
    "edge_100k_open_s": "open_s",
    "edge_100k_rss_mb": "peak_rss_mb",
}
PER_LINE = (
    "insert_points_per_s",
    "settle_s",
    "unsettled_p50_ms",
    "fill_peak_rss_mb",
    "folder_mb",
    "open_s",
    "open_cpu_s",
    "open_rss_mb",
    "peak_rss_mb",
    "search_p50_ms",
    "search_p99_ms",
    "search_cpu_p50_ms",
    "filtered_p50_ms",
    "filtered_p99_ms",
    "filtered_cpu_p50_ms",
    "recall_at_10",
    "filtered_recall_at_10",
)


def REQUIRED(figures: dict[str, Any]) -> list[str]:  # the name bench.__main__ reads
    """Every per-line field of every engine and size run, and the Edge 100k headline when it ran."""
    runs = figures.get("runs", [])
    names = [f"{e}_{field}_{size}" for e, size in runs for field in (MILVUS_LINE if e == "milvus" else PER_LINE)]
    return names + (list(HEADLINE) if ["edge", 100_000] in figures.get("runs", []) else [])


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench vectorstore")
    parser.add_argument("--quick", action="store_true", help="Edge at 10k and 100k, the others smaller")
    parser.add_argument("--engines", default=",".join(ENGINES), help=f"comma-separated, of {', '.join(ENGINES)}")
    parser.add_argument("--sizes", default="", help="comma-separated point counts for every engine")
    parser.add_argument("--queries", type=int, default=0, help="queries per kind (default 100, quick 50)")
    parser.add_argument("--vectors", choices=("clustered", "uniform"), default="clustered")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the folders go")
    args = parser.parse_args(argv)
    args.engines = [engine for engine in args.engines.split(",") if engine]
    unknown = set(args.engines) - set(ENGINES)
    if unknown:
        parser.error(f"unknown engine(s) {sorted(unknown)}")
    table = QUICK_SIZES if args.quick else SIZES
    given = tuple(int(size) for size in args.sizes.split(",") if size)
    args.plan = [(engine, size) for engine in args.engines for size in (given or table[engine])]
    args.queries = args.queries or (50 if args.quick else 100)
    return args


def _side(workdir: Path, side: str, engine: str, folder: Path, count: int, queries: int, kind: str) -> dict:
    result, log = workdir / f"{side}.json", workdir / f"{side}.log"
    args = (side, engine, str(folder), str(count), str(queries), kind, str(result))
    process = start_module("bench.vectorstore_sides", *args, env={}, log_path=log)
    try:
        if process.wait() != 0:
            raise RuntimeError(f"bench.vectorstore_sides {side} {engine} failed:\n{log.read_text()[-3000:]}")
    finally:
        stop(process)
    return json.loads(result.read_text())


def measure(engine: str, count: int, queries: int, kind: str, parent: Path) -> dict[str, Any]:
    """Every figure of one engine at one size (one JSON line)."""
    if engine == "milvus":
        return measure_milvus(count, queries, kind, parent)
    mask = filter_mask(count)
    if mask.sum() < TOP_K:
        raise ValueError(f"at {count} points the filter matches fewer than {TOP_K}: use more points")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-vectorstore-{engine}-{count}-", dir=parent))
    folder = workdir / "store"
    try:
        filled = _side(workdir, "fill", engine, folder, count, queries, kind)
        # blocks on disk, not file sizes: Edge preallocates sparse files (WAL segments, mmaps)
        folder_bytes = sum(path.stat().st_blocks * 512 for path in folder.rglob("*") if path.is_file())
        searched = _side(workdir, "search", engine, folder, count, queries, kind)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    numbers = {sha_of(number): number for number in range(count)}
    wanted = query_vectors(queries, kind)
    plain, filtered = searched["plain"], searched["filtered"]
    return {
        "benchmark": "vectorstore",
        "engine": engine,
        "points": count,
        "vectors": kind,
        "dim": DIM,
        "queries": queries,
        "insert_points_per_s": round(filled["insert_points_per_s"], 1),
        "settle_s": round(filled["settle_s"], 3),
        "unsettled_p50_ms": ms_at(filled["unsettled_ms"], 50),
        "fill_peak_rss_mb": round(filled["peak_rss_mb"], 1),
        "folder_mb": round(folder_bytes / 2**20, 1),
        "open_s": round(searched["open_s"], 3),
        "open_cpu_s": round(searched["open_cpu_s"], 3),
        "baseline_rss_mb": round(searched["baseline_rss_mb"], 1),
        "open_rss_mb": round(searched["open_rss_mb"], 1),
        "peak_rss_mb": round(searched["peak_rss_mb"], 1),
        "search_p50_ms": ms_at(plain["ms"], 50),
        "search_p99_ms": ms_at(plain["ms"], 99),
        "search_cpu_p50_ms": ms_at(plain["cpu_ms"], 50),
        "filtered_p50_ms": ms_at(filtered["ms"], 50),
        "filtered_p99_ms": ms_at(filtered["ms"], 99),
        "filtered_cpu_p50_ms": ms_at(filtered["cpu_ms"], 50),
        "recall_at_10": round(recall(plain["hits"], exact_top(count, wanted, None, kind), numbers), 4),
        "filtered_recall_at_10": round(recall(filtered["hits"], exact_top(count, wanted, mask, kind), numbers), 4),
        "filter_matches": int(mask.sum()),
    }


def run(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "runtime": "none (no model: vectors are made here)",
        "qdrant_edge_py": importlib.metadata.version("qdrant-edge-py"),
        "qdrant_client": importlib.metadata.version("qdrant-client"),
        "vectors": args.vectors,
        "queries": args.queries,
        "runs": [[engine, size] for engine, size in args.plan],
    }
    for engine, count in args.plan:
        figures = measure(engine, count, args.queries, args.vectors, args.dir)
        print(json.dumps(figures), flush=True)
        fields = MILVUS_LINE if engine == "milvus" else PER_LINE
        summary.update({f"{engine}_{field}_{count}": figures[field] for field in fields})
        if (engine, count) == ("edge", 100_000):
            summary.update({name: figures[field] for name, field in HEADLINE.items()})
    return summary
