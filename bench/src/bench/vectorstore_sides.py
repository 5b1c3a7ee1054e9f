"""The two sides of ``bench vectorstore`` on our engines, each run in a process of its own: the indexer's
(fill) and the app's (search). Payloads come from the point model built from real ``ImageDownloaded``
messages; the vectors and the filter from :mod:`bench.vectorstore_data`.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import psutil

from bench.vectorstore_data import (
    BATCH,
    COLLECTION,
    DIM,
    DOMAINS,
    FILTER_DOMAIN,
    FILTER_MIN_WIDTH,
    MODEL,
    TOP_K,
    UNSETTLED_QUERIES,
    WIDTHS,
    query_vectors,
    sha_of,
    vectors,
)
from dyimages_common.images.storage import FORMATS, stored_path
from dyimages_common.messaging.messages import ImageDownloaded

_FORMATS = sorted(FORMATS.values())


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


# --- the sides: each imports the store and the app inside, so its memory is its own side's alone ---


def open_index(engine: str, folder: Path) -> Any:
    """The index in ``folder`` through the seam; ``edge-sq8`` is Edge with int8 scalar quantization, made
    through the Edge engine's own folder (the one engine option no setting names)."""
    from dyimages_common.settings import QdrantSettings, load_settings
    from dyimages_common.store.factory import open_store

    if engine == "edge-sq8":
        from dyimages_common.store.edge.engine import EdgeEngine
        from dyimages_common.store.index import ImageIndex

        return ImageIndex(EdgeEngine(folder, int8_quantization=True), COLLECTION)
    embedded = "local" if engine == "local" else "edge"
    return open_store(
        load_settings(QdrantSettings, qdrant_path=folder, qdrant_embedded=embedded, qdrant_collection=COLLECTION)
    )


def _timed(index: Any, queries: np.ndarray, filters: Any) -> dict[str, list[Any]]:
    """Each query through the app's own search: wall and CPU ms, and the shas it returned."""
    from search_app.search.engine import search_vector

    timed: dict[str, list[Any]] = {"ms": [], "cpu_ms": [], "hits": []}
    for vector in queries:
        started, cpu_started = time.perf_counter(), time.process_time()
        found = search_vector(index, vector, filters=filters, limit=TOP_K)
        timed["ms"].append(1000 * (time.perf_counter() - started))
        timed["cpu_ms"].append(1000 * (time.process_time() - cpu_started))
        timed["hits"].append([hit.sha256 for hit in found])
    return timed


def fill(engine: str, folder: Path, count: int, kind: str) -> dict[str, Any]:
    """Create the collection as the indexer does, write ``count`` points with its writer, then settle as an
    idle indexer does; the search speed before settling is timed too (what settling buys)."""
    from dyimages_common.store.builds import ensure_serving
    from dyimages_common.store.types import ImageVector
    from search_app.search.model import Filters

    index = open_index(engine, folder)
    ensure_serving(index, dim=DIM, model=MODEL, pretrained="none")
    collection, now, number = index.serving(), datetime.now(UTC), 0
    started = time.perf_counter()
    for block in vectors(count, kind):
        for first in range(0, len(block), BATCH):
            rows = block[first : first + BATCH]
            batch = [ImageVector(sha_of(number + i), row, [message(number + i, now)]) for i, row in enumerate(rows)]
            index.write(collection, batch, model=MODEL)
            number += len(batch)
    insert_s = time.perf_counter() - started
    unsettled = _timed(index, query_vectors(UNSETTLED_QUERIES, kind), Filters())
    started = time.perf_counter()
    index.settle()
    settle_s = time.perf_counter() - started
    stored = index.count()
    index.close()
    if stored != count:
        raise RuntimeError(f"wrote {count} points but the collection holds {stored}")
    return {"insert_points_per_s": count / insert_s, "settle_s": settle_s, "unsettled_ms": unsettled["ms"]}


def search(engine: str, folder: Path, queries: int, kind: str) -> dict[str, Any]:
    """Open the folder as the app does and time the app's search, with and without the filter."""
    from search_app.search.model import Filters

    me, wanted = psutil.Process(), query_vectors(queries, kind)
    baseline = me.memory_info().rss
    started, cpu_started = time.perf_counter(), time.process_time()
    index = open_index(engine, folder)
    index.count()  # opened: Edge loads a shard on first use
    open_s, open_cpu_s, open_rss = (
        time.perf_counter() - started,
        time.process_time() - cpu_started,
        me.memory_info().rss,
    )
    plain = _timed(index, wanted, Filters())
    filtered = _timed(index, wanted, Filters(domains=(FILTER_DOMAIN,), min_width=FILTER_MIN_WIDTH))
    index.close()
    return {
        "open_s": open_s,
        "open_cpu_s": open_cpu_s,
        "baseline_rss_mb": baseline / 2**20,
        "open_rss_mb": open_rss / 2**20,
        "plain": plain,
        "filtered": filtered,
    }


def main(argv: list[str]) -> None:
    """``python -m bench.vectorstore_sides fill|search ENGINE FOLDER COUNT QUERIES KIND RESULT``."""
    side, engine, folder, count, queries, kind, result = argv
    if side == "fill":
        figures = fill(engine, Path(folder), int(count), kind)
    else:
        figures = search(engine, Path(folder), int(queries), kind)
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # the kernel's high-water mark
    Path(result).write_text(json.dumps(figures))


if __name__ == "__main__":
    main(sys.argv[1:])
