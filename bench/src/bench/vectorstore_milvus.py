"""Milvus in ``bench vectorstore``: PyPI's ``milvus`` 2.3.5 (its embedded *standalone server binary*, not the
pure-Python milvus-lite) through pymilvus 2.3.7, in a virtual environment of its own that the benchmark makes
(:func:`tool_python`), outside the workspace's dependencies.

The same vectors and filter as our engines (:mod:`bench.vectorstore_data`), an HNSW index (M 16,
efConstruction 100, COSINE, ef 128 at search), a scalar field for the domain and one for the width. Not
through our seam, and not the same write: Milvus has no conditional write, so points go in plain inserts of
1,000 (what our indexer could not use; docs/vector-store.md). Its server is another process reached over
gRPC on 127.0.0.1, so the round trip of a query that does no search (``transport_p50_ms``: a primary-key
lookup of one point) is reported beside the searches, and ``peak_rss_mb`` is the server's.

``python <venv>/bin/python -m bench.vectorstore_milvus FOLDER COUNT QUERIES KIND RESULT`` (with ``bench/src``
on ``PYTHONPATH``; the benchmark runs it so).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.vectorstore_data import (
    DIM,
    DOMAINS,
    FILTER_DOMAIN,
    FILTER_MIN_WIDTH,
    TOP_K,
    WIDTHS,
    exact_top,
    filter_mask,
    ms_at,
    query_vectors,
    recall,
    sha_of,
    vectors,
)

REQUIREMENTS = (
    "milvus==2.3.5",
    "pymilvus==2.3.7",
    "setuptools<70",
    "protobuf>=4.21,<5",
    "marshmallow<4",
    "numpy",
    "psutil",
)
INSERT = 1000


def tool_python(home: Path) -> Path:
    """The virtual environment with Milvus 2.3.5 and pymilvus 2.3.7 (made once under ``home``, reused)."""
    venv = home / "milvus-2.3.5"
    python = venv / "bin" / "python"
    marker = venv / "requirements.txt"
    if not marker.exists() or marker.read_text() != "\n".join(REQUIREMENTS):
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *REQUIREMENTS], check=True)
        marker.write_text("\n".join(REQUIREMENTS))
    return python


def measure_milvus(count: int, queries: int, kind: str, parent: Path) -> dict[str, Any]:
    """Milvus 2.3.5 at one size, in its own virtual environment (:mod:`bench.vectorstore_milvus`)."""
    python = tool_python(Path.home() / ".cache" / "dyimages")
    workdir = Path(tempfile.mkdtemp(prefix=f"bench-vectorstore-milvus-{count}-", dir=parent))
    result, log = workdir / "milvus.json", workdir / "milvus.log"
    try:
        with open(log, "wb") as output:
            done = subprocess.run(
                [
                    str(python),
                    "-m",
                    "bench.vectorstore_milvus",
                    str(workdir / "data"),
                    str(count),
                    str(queries),
                    kind,
                    str(result),
                ],
                env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
                stdout=output,
                stderr=subprocess.STDOUT,
                check=False,
            )
        if done.returncode != 0:
            raise RuntimeError(f"bench.vectorstore_milvus failed:\n{log.read_text()[-3000:]}")
        folder_bytes = sum(path.stat().st_blocks * 512 for path in (workdir / "data").rglob("*") if path.is_file())
        figures = json.loads(result.read_text())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    numbers = {sha_of(number): number for number in range(count)}
    wanted = query_vectors(queries, kind)
    return {
        "benchmark": "vectorstore",
        "engine": "milvus",
        "milvus": "2.3.5 (standalone binary of the pip package), pymilvus 2.3.7",
        "points": count,
        "vectors": kind,
        "queries": queries,
        "server_start_s": round(figures["server_start_s"], 2),
        "insert_points_per_s": round(figures["insert_points_per_s"], 1),
        "index_s": round(figures["index_s"], 2),
        "load_s": round(figures["load_s"], 2),
        "server_rss_mb": round(figures["server_rss_mb"], 1),
        "folder_mb": round(folder_bytes / 2**20, 1),
        "search_p50_ms": ms_at(figures["plain_ms"], 50),
        "search_p99_ms": ms_at(figures["plain_ms"], 99),
        "filtered_p50_ms": ms_at(figures["filtered_ms"], 50),
        "filtered_p99_ms": ms_at(figures["filtered_ms"], 99),
        "transport_p50_ms": ms_at(figures["transport_ms"], 50),
        "recall_at_10": round(recall(figures["plain"], exact_top(count, wanted, None, kind), numbers), 4),
        "filtered_recall_at_10": round(
            recall(figures["filtered"], exact_top(count, wanted, filter_mask(count), kind), numbers), 4
        ),
    }


def _ms(started: float) -> float:
    return 1000 * (time.perf_counter() - started)


def run(folder: Path, count: int, queries: int, kind: str) -> dict[str, Any]:
    import psutil
    from milvus import default_server
    from pymilvus import Collection, CollectionSchema, DataType, FieldSchema, connections, utility

    default_server.set_base_dir(str(folder))
    started = time.perf_counter()
    default_server.start()
    start_s = time.perf_counter() - started
    server = psutil.Process(default_server.server_proc.pid)
    try:
        connections.connect(host="127.0.0.1", port=default_server.listen_port)
        fields = [
            FieldSchema("number", DataType.INT64, is_primary=True),
            FieldSchema("vector", DataType.FLOAT_VECTOR, dim=DIM),
            FieldSchema("domain", DataType.VARCHAR, max_length=64),
            FieldSchema("width", DataType.INT64),
        ]
        collection = Collection("images", CollectionSchema(fields))
        started, number = time.perf_counter(), 0
        for block in vectors(count, kind):
            for first in range(0, len(block), INSERT):
                rows = block[first : first + INSERT]
                numbers = list(range(number, number + len(rows)))
                domains = [f"site{n % DOMAINS}.example" for n in numbers]
                collection.insert([numbers, rows.tolist(), domains, [WIDTHS[n % len(WIDTHS)] for n in numbers]])
                number += len(rows)
        collection.flush()
        insert_s = time.perf_counter() - started
        started = time.perf_counter()
        index = {"index_type": "HNSW", "metric_type": "COSINE", "params": {"M": 16, "efConstruction": 100}}
        collection.create_index("vector", index)
        utility.wait_for_index_building_complete("images")
        index_s = time.perf_counter() - started
        started = time.perf_counter()
        collection.load()
        load_s = time.perf_counter() - started
        wanted = query_vectors(queries, kind)
        search = {"metric_type": "COSINE", "params": {"ef": 128}}
        where = f'domain == "{FILTER_DOMAIN}" and width >= {FILTER_MIN_WIDTH}'
        timed: dict[str, list[Any]] = {
            "plain_ms": [],
            "plain": [],
            "filtered_ms": [],
            "filtered": [],
            "transport_ms": [],
        }
        for vector in wanted:
            for name, expr in (("plain", None), ("filtered", where)):
                started = time.perf_counter()
                (hits,) = collection.search([vector.tolist()], "vector", search, limit=TOP_K, expr=expr)
                timed[f"{name}_ms"].append(_ms(started))
                timed[name].append([sha_of(int(hit.id)) for hit in hits])
            started = time.perf_counter()
            collection.query("number == 0", output_fields=["number"])
            timed["transport_ms"].append(_ms(started))
        peak = server.memory_info().rss / 2**20
        return {
            "server_start_s": start_s,
            "insert_points_per_s": count / insert_s,
            "index_s": index_s,
            "load_s": load_s,
            "server_rss_mb": peak,
            **timed,
        }
    finally:
        connections.disconnect("default")
        default_server.stop()


if __name__ == "__main__":
    folder, count, queries, kind, result = sys.argv[1:]
    os.environ.setdefault("GLOG_minloglevel", "2")
    Path(result).write_text(json.dumps(run(Path(folder), int(count), int(queries), kind)))
