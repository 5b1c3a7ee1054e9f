"""The benchmarks' synthetic store: an embedded folder filled with indexer-shaped points.

N normalised random vectors written through the store seam with the indexer's own write (payloads
from the point model, conditional upserts), a real tiny JPEG behind each when the browser needs
thumbnails. The folder lives on /dev/shm: an embedded store commits every point, which on a slow
disk makes filling 100,000 points take a quarter of an hour; searching is the same either way.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from dyimages_common.messaging.messages import ImageDownloaded, LibraryFiles
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.builds import ensure_serving
from dyimages_common.store.engine import Engine
from dyimages_common.store.factory import open_engine
from dyimages_common.store.index import ImageIndex
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import EVERYTHING, ImageVector
from testkit.images import jpeg

COLLECTION = "images"
DIM = 512
FILL_BATCH = 2000


def open_index(qdrant_path: Path, model: str) -> tuple[ImageStore, Engine]:
    """The benchmark's index in an embedded folder (with its first collection) and the engine below it."""
    engine = open_engine(load_settings(QdrantSettings, qdrant_path=qdrant_path, qdrant_collection=COLLECTION))
    index = ImageIndex(engine, COLLECTION)
    ensure_serving(index, dim=DIM, model=model, pretrained=None)
    return index, engine


def fill(index: ImageStore, images_dir: Path | None, start: int, stop: int, model: str, seed: int = 42) -> None:
    """Points ``start`` to ``stop`` (random unit vectors), tiny JPEGs behind them when ``images_dir`` is given;
    then the store's upkeep (an HNSW index where the engine builds one), as an idle indexer leaves it."""
    now = datetime.now(UTC)
    rng = np.random.default_rng(seed + start)
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
            found = LibraryFiles(  # every point is in the photo folder too: every field of the model is set
                sha256=sha,
                paths=(f"2024/{number % 12 + 1:02d}/IMG_{number:06d}.jpg",),
                seq=number + 1,
                content_type="image/jpeg",
                width=64,
                height=48,
                bytes=len(data),
                modified_at=now,
            )
            points.append(ImageVector(sha, vectors[offset], [event, found]))
        index.write(collection, points, model=model)
    index.settle()


def raw_search_ms(engine: Engine, collection: str, vector: np.ndarray, limit: int) -> float:
    """The store's own search, timed: the engine's query for the top ``limit`` with payloads, no filter."""
    query = np.asarray(vector, dtype=np.float32)
    started = time.perf_counter()
    rows = engine.query(
        collection, query, EVERYTHING, min_score=None, limit=limit, offset=0, words=[], depth=limit, vectors=False
    )
    elapsed = (time.perf_counter() - started) * 1000
    if len(rows) != limit:
        raise RuntimeError(f"the store found {len(rows)} points, not {limit}")
    return elapsed
