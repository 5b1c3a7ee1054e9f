"""Qdrant's embedded mode at 10,000 and 100,000 points: the numbers behind the README's embedded limit.

``python -m bench vectorstore [--quick] [--sizes N,M] [--queries Q] [--dir DIR]``

For each size N (default 10,000 and 100,000; quick 2,000 and 10,000), in a fresh folder under DIR
(default: the system's temporary folder, on disk here, as QDRANT_PATH would be):

1. fill: a child process (the indexer's side) creates the collection through the store seam
   (:func:`dyimages_common.index_builds.ensure_serving`: the real schema, cosine, 512-d, the payload
   indexes, the model in the metadata, behind the alias) and writes N points with the indexer's own
   write, :meth:`dyimages_common.image_index.ImageIndex.write`, in batches of 32 (``INDEXER_BATCH_SIZE``'s
   default): payloads from the point model (``ImagePoint.merged``) built from real ``ImageDownloaded``
   messages, conditional writes (``insert_only``, ``update_filter`` on the
   revision), the read-back of revisions. Vectors are random unit vectors.
2. search: a second child process (the app's side) opens the folder (embedded mode reads every
   point into memory) and runs Q queries (random unit vectors; default 50, quick 20) through the
   app's own :func:`search_app.search.engine.search_vector`, top 10 with payloads, once without a filter and
   once with the app's filter ``domains=site3.example, min_width=1024`` (about 1 point in 12 matches).
   Embedded mode checks a filter in Python, point by point, so a filtered query at 100,000 points
   takes seconds: that is why Q is small, and why p99 over 50 queries is close to their maximum.
3. exact: this process computes the true top 10 of each query with NumPy (brute force over the same
   vectors, the same filter) and compares.

Each child is its own process and session. Its RSS at given moments is read with psutil; its peak
is the kernel's high-water mark (``getrusage``), so no short spike between samples is missed.

Fields of each size's JSON line (``"benchmark": "vectorstore"``, ``"points": N``):

* ``insert_points_per_s``: points written per second by the fill process (batches of 32, wait=True);
* ``fill_peak_rss_mb``: peak RSS of the fill process;
* ``folder_mb``: size of the embedded folder on disk after the fill;
* ``open_s``: ``ImageIndex.connect`` (embedded mode) on the filled folder, in a fresh process; ``open_cpu_s``: the
  CPU seconds it took (on a busy machine the wall time waits for the CPU; the CPU time does not);
* ``baseline_rss_mb``: RSS of the search process after its imports, before opening the folder;
* ``open_rss_mb``: its RSS right after opening (what an idle app holds);
* ``peak_rss_mb``: its peak RSS over open and every search;
* ``search_p50_ms``, ``search_p99_ms``: one query, no filter;
* ``filtered_p50_ms``, ``filtered_p99_ms``: one query with the payload filter;
* ``search_cpu_p50_ms``, ``filtered_cpu_p50_ms``: median CPU time of one query (all the search
  process's threads), the load-independent counterpart of the two p50s;
* ``recall_at_10``, ``filtered_recall_at_10``: mean share of the exact top 10 found in the top 10;
* ``filter_matches``: points the filter matches; ``queries``; ``dim``; ``batch``; ``folder`` (DIR).

The last line is the summary: the same figures keyed ``<field>_<N>`` (for example
``search_p50_ms_100000``), plus ``sizes``, ``cpu_count``, ``qdrant_client`` (its version) and
``load_avg_start`` / ``load_avg_end`` (1-minute load average, so a loaded machine shows as one).

Embedded mode is qdrant-client's pure-Python local mode (NumPy brute force, SQLite persistence,
one process per folder), not the Qdrant server: these figures say nothing about the server's HNSW
index, whose published figures are cited in docs/vector-store.md.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.metadata
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from dyimages_common.images.storage import FORMATS, stored_path
from dyimages_common.messaging.messages import ImageDownloaded
from testkit.procs import start_module, stop

COLLECTION = "images"
MODEL = "ViT-B-32"
DIM = 512
BATCH = 32  # the indexer's default INDEXER_BATCH_SIZE: points per upsert
CHUNK = 1000  # vectors are generated in chunks of this many, each from its own seed
TOP_K = 10
SEED = 20261201
WIDTHS = (320, 640, 1024, 1920, 4032)  # a point's width is WIDTHS[i % 5]; height is 3/4 of it
DOMAINS = 7  # a point's URL is on site{i % 7}.example
FILTER_SITE = 3  # the filter's domain: site3.example
FILTER_DOMAIN = f"site{FILTER_SITE}.example"
FILTER_MIN_WIDTH = 1024
_FORMATS = sorted(FORMATS.values())  # (extension, content type); point i has _FORMATS[i % 4]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench vectorstore")
    parser.add_argument("--quick", action="store_true", help="2,000 and 10,000 points, fewer queries")
    parser.add_argument("--sizes", default="", help="comma-separated point counts (default 10000,100000)")
    parser.add_argument("--queries", type=int, default=0, help="queries per kind (default 50, quick 20)")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where the folders go")
    args = parser.parse_args(argv)
    default_sizes = "2000,10000" if args.quick else "10000,100000"
    args.sizes = [int(size) for size in (args.sizes or default_sizes).split(",")]
    args.queries = args.queries or (20 if args.quick else 50)
    return args


# --- the data: the same in the fill process and in this one --------------------------------------


def vectors(count: int) -> Iterator[np.ndarray]:
    """The first ``count`` point vectors (unit, float32), in chunks of at most CHUNK rows."""
    for chunk, first in enumerate(range(0, count, CHUNK)):
        rows = min(CHUNK, count - first)
        block = np.random.default_rng([SEED, chunk]).standard_normal((CHUNK, DIM)).astype(np.float32)[:rows]
        yield block / np.linalg.norm(block, axis=1, keepdims=True)


def query_vectors(count: int) -> np.ndarray:
    """The benchmark's query vectors (unit, float32), independent of the point vectors."""
    block = np.random.default_rng([SEED, 2**31]).standard_normal((count, DIM)).astype(np.float32)
    return block / np.linalg.norm(block, axis=1, keepdims=True)


def sha_of(number: int) -> str:
    return hashlib.sha256(f"vectorstore-{number}".encode()).hexdigest()


def message(number: int, downloaded_at: datetime) -> ImageDownloaded:
    """The downloader's message for synthetic image ``number`` (validated like a real one)."""
    sha = sha_of(number)
    extension, content_type = _FORMATS[number % len(_FORMATS)]
    width = WIDTHS[number % len(WIDTHS)]
    return ImageDownloaded(
        sha256=sha,
        path=stored_path(sha, extension),
        url=f"https://site{number % DOMAINS}.example/photos/{number}.{extension}",
        content_type=content_type,
        width=width,
        height=width * 3 // 4,
        bytes=40_000 + (number * 7919) % 2_000_000,
        downloaded_at=downloaded_at,
    )


def filter_mask(count: int) -> np.ndarray:
    """Which of the first ``count`` points the benchmark's filter matches (the exact side's filter)."""
    numbers = np.arange(count)
    widths = np.asarray(WIDTHS)[numbers % len(WIDTHS)]
    return (numbers % DOMAINS == FILTER_SITE) & (widths >= FILTER_MIN_WIDTH)


# --- the two child processes ---------------------------------------------------------------------
# They import qdrant-client, the indexer and the app inside the functions: this process, which only
# compares results, then holds none of them, and each child's memory is its own side's alone.


def _open(folder: Path) -> Any:
    """The index in ``folder`` through the store seam (imports it here: see above)."""
    from dyimages_common.image_index import ImageIndex
    from dyimages_common.settings import QdrantSettings, load_settings

    return ImageIndex.connect(load_settings(QdrantSettings, qdrant_path=folder, qdrant_collection=COLLECTION))


def fill(folder: Path, count: int) -> dict[str, Any]:
    """Create the collection as the indexer does and write ``count`` points with its writer."""
    from dyimages_common.index_builds import ensure_serving
    from dyimages_common.point_writes import ImageVector

    client = _open(folder)
    ensure_serving(client, dim=DIM, model=MODEL, pretrained="none")
    collection = client.serving() or COLLECTION
    now = datetime.now(UTC)
    started = time.perf_counter()
    number = 0
    for block in vectors(count):
        for first in range(0, len(block), BATCH):
            images = [
                ImageVector(sha256=sha_of(number + i), vector=row, events=[message(number + i, now)])
                for i, row in enumerate(block[first : first + BATCH])
            ]
            client.write(collection, images, model=MODEL)
            number += len(images)
    elapsed = time.perf_counter() - started
    stored = client.count()
    client.close()
    if stored != count:
        raise RuntimeError(f"wrote {count} points but the collection holds {stored}")
    return {"insert_points_per_s": count / elapsed}


def _timed_searches(client: Any, vectors_: np.ndarray, filters: Any) -> dict[str, list[Any]]:
    """Each query's wall time and CPU time (ms, this process's threads) and the shas it returned."""
    from search_app.search.engine import search_vector

    timed: dict[str, list[Any]] = {"ms": [], "cpu_ms": [], "hits": []}
    for vector in vectors_:
        started, cpu_started = time.perf_counter(), time.process_time()
        found = search_vector(client, vector, filters=filters, limit=TOP_K)
        timed["ms"].append(1000 * (time.perf_counter() - started))
        timed["cpu_ms"].append(1000 * (time.process_time() - cpu_started))
        timed["hits"].append([hit.sha256 for hit in found])
    return timed


def search(folder: Path, queries: int) -> dict[str, Any]:
    """Open the folder as the app does and time the app's search, with and without the filter."""
    from search_app.search.model import Filters

    me = psutil.Process()
    wanted = query_vectors(queries)
    baseline = me.memory_info().rss
    started, cpu_started = time.perf_counter(), time.process_time()
    client = _open(folder)
    open_s, open_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
    open_rss = me.memory_info().rss
    plain = _timed_searches(client, wanted, Filters())
    filtered = _timed_searches(client, wanted, Filters(domains=(FILTER_DOMAIN,), min_width=FILTER_MIN_WIDTH))
    client.close()
    return {
        "open_s": open_s,
        "open_cpu_s": open_cpu_s,
        "baseline_rss_mb": baseline / 2**20,
        "open_rss_mb": open_rss / 2**20,
        "plain": plain,
        "filtered": filtered,
    }


def _child(argv: list[str]) -> None:
    """``python -m bench.vectorstore fill|search FOLDER COUNT [QUERIES] RESULT``: one side, in its own process."""
    side, folder, count, result = argv[0], Path(argv[1]), int(argv[2]), Path(argv[-1])
    figures = fill(folder, count) if side == "fill" else search(folder, int(argv[3]))
    # The kernel's high-water mark of this process's RSS (KiB on Linux): exact, no sampling.
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.write_text(json.dumps(figures))


# --- this process: run the children, compare with exact search -----------------------------------


def _run_child(workdir: Path, *args: str) -> dict[str, Any]:
    """Run one side in its own process and session; its figures."""
    result = workdir / f"{args[0]}.json"
    log = workdir / f"{args[0]}.log"
    process = start_module("bench.vectorstore", *args, str(result), env={}, log_path=log)
    try:
        if process.wait() != 0:
            raise RuntimeError(f"bench.vectorstore {args[0]} failed:\n{log.read_text()[-3000:]}")
    finally:
        stop(process)
    return json.loads(result.read_text())


def exact_top(count: int, wanted: np.ndarray, mask: np.ndarray | None) -> list[set[int]]:
    """The exact top 10 point numbers of each query (cosine = dot product of unit vectors)."""
    scores = np.concatenate([block @ wanted.T for block in vectors(count)])  # (count, queries)
    if mask is not None:
        scores[~mask] = -np.inf
    top = np.argsort(-scores, axis=0)[:TOP_K]
    return [set(top[:, column].tolist()) for column in range(wanted.shape[0])]


def recall(found: list[list[str]], exact: list[set[int]], numbers: dict[str, int]) -> float:
    """Mean share of the exact top 10 that the store returned in its top 10."""
    shares = [
        len({numbers[sha] for sha in hits} & truth) / len(truth) for hits, truth in zip(found, exact, strict=True)
    ]
    return statistics.fmean(shares)


def _percentile(values: list[float], share: float) -> float:
    return float(np.percentile(values, share))


def measure(count: int, queries: int, parent: Path) -> dict[str, Any]:
    """Every figure at one size (one JSON line)."""
    mask = filter_mask(count)
    if mask.sum() < TOP_K:
        raise ValueError(f"at {count} points the filter matches fewer than {TOP_K}: use more points")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-vectorstore-{count}-", dir=parent))
    folder = workdir / "qdrant"
    try:
        filled = _run_child(workdir, "fill", str(folder), str(count))
        folder_bytes = sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())
        searched = _run_child(workdir, "search", str(folder), str(count), str(queries))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    numbers = {sha_of(number): number for number in range(count)}
    wanted = query_vectors(queries)
    plain, filtered = searched["plain"], searched["filtered"]
    return {
        "benchmark": "vectorstore",
        "store": "qdrant-embedded",
        "points": count,
        "dim": DIM,
        "batch": BATCH,
        "queries": queries,
        "folder": str(parent),
        "insert_points_per_s": round(filled["insert_points_per_s"], 1),
        "fill_peak_rss_mb": round(filled["peak_rss_mb"], 1),
        "folder_mb": round(folder_bytes / 2**20, 1),
        "open_s": round(searched["open_s"], 3),
        "open_cpu_s": round(searched["open_cpu_s"], 3),
        "baseline_rss_mb": round(searched["baseline_rss_mb"], 1),
        "open_rss_mb": round(searched["open_rss_mb"], 1),
        "peak_rss_mb": round(searched["peak_rss_mb"], 1),
        "search_p50_ms": round(_percentile(plain["ms"], 50), 2),
        "search_p99_ms": round(_percentile(plain["ms"], 99), 2),
        "search_cpu_p50_ms": round(_percentile(plain["cpu_ms"], 50), 2),
        "filtered_p50_ms": round(_percentile(filtered["ms"], 50), 2),
        "filtered_p99_ms": round(_percentile(filtered["ms"], 99), 2),
        "filtered_cpu_p50_ms": round(_percentile(filtered["cpu_ms"], 50), 2),
        "recall_at_10": round(recall(plain["hits"], exact_top(count, wanted, None), numbers), 4),
        "filtered_recall_at_10": round(recall(filtered["hits"], exact_top(count, wanted, mask), numbers), 4),
        "filter_matches": int(mask.sum()),
    }


SUMMARY_FIELDS = (
    "insert_points_per_s",
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


def run(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    args.dir.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {
        "benchmark": "vectorstore",
        "store": "qdrant-embedded",
        "qdrant_client": importlib.metadata.version("qdrant-client"),
        "sizes": args.sizes,
        "queries": args.queries,
        "cpu_count": len(os.sched_getaffinity(0)),
        "load_avg_start": round(os.getloadavg()[0], 2),
    }
    for count in args.sizes:
        figures = measure(count, args.queries, args.dir)
        print(json.dumps(figures), flush=True)
        summary.update({f"{field}_{count}": figures[field] for field in SUMMARY_FIELDS})
    summary["load_avg_end"] = round(os.getloadavg()[0], 2)
    return summary


if __name__ == "__main__":
    _child(sys.argv[1:])
