"""The in-process reference of ``bench ingest``: files to searchable points in one process, no network.

``python -m bench.ingest_reference FILES_DIR STORE_DIR RUNTIME THREADS DECODE_THREADS BATCH ENV_JSON``
reads each file, decodes and preprocesses it as the embedding service does, runs the service's
model on the service's runtime (:class:`bench.encoder.Encoder`: the same model and decode threads,
the next batch decoded while the model runs on this one) in batches of the indexer's size, and
writes each batch with the indexer's own write (``ImageStore.write`` through the store seam: the
same payloads and conditional upserts, into a collection made by ``ensure_serving``) on one writer
thread, a batch written while the next is embedded, as the indexer's two batches in flight do.
Prints ``{"images_per_s", "seconds", "cpu_s"}``; started in a session of its own, as each service is.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.encoder import Encoder
from dyimages_common.images.storage import sha256_hex, stored_path
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.builds import ensure_serving
from dyimages_common.store.factory import open_store
from dyimages_common.store.types import ImageVector


def _event(path: Path, data: bytes, size: tuple[int, int]) -> ImageDownloaded:
    sha = sha256_hex(data)
    return ImageDownloaded(
        sha256=sha,
        path=stored_path(sha, "jpg"),
        url=f"http://127.0.0.1/{path.name}",
        content_type="image/jpeg",
        width=size[0],
        height=size[1],
        bytes=len(data),
        downloaded_at=datetime.now(UTC),
    )


def main(argv: list[str]) -> None:
    files_dir, store_dir, runtime, threads, decode_threads, batch, env_json = argv
    env = json.loads(env_json)
    encoder = Encoder(runtime, env, int(threads), int(decode_threads))
    store = open_store(load_settings(QdrantSettings, qdrant_path=Path(store_dir)))
    ensure_serving(store, dim=512, model=env["MODEL_NAME"], pretrained=None)
    collection = store.serving() or "images"
    files = sorted(Path(files_dir).iterdir())
    chunks = [files[start : start + int(batch)] for start in range(0, len(files), int(batch))]

    def decode(path: Path) -> tuple[ImageDownloaded, Any]:
        data = path.read_bytes()
        pixels = encoder.decode(path)
        return _event(path, data, (640, 480)), pixels

    def embed(decoded: list[Future[tuple[ImageDownloaded, Any]]]) -> list[ImageVector]:
        events, pixels = zip(*(future.result() for future in decoded), strict=True)
        vectors = np.asarray(encoder.embed_images(list(pixels)), dtype=np.float32)
        return [ImageVector(e.sha256, vector, [e]) for e, vector in zip(events, vectors, strict=True)]

    with ThreadPoolExecutor(int(decode_threads)) as pool, ThreadPoolExecutor(1) as writer:
        embed([pool.submit(decode, path) for path in files[:2]])  # warm-up, as the service had
        started, cpu_started = time.perf_counter(), time.process_time()
        upcoming = [pool.submit(decode, path) for path in chunks[0]]
        writing: Future[int] | None = None
        for number in range(len(chunks)):
            current = upcoming
            if number + 1 < len(chunks):
                upcoming = [pool.submit(decode, path) for path in chunks[number + 1]]
            images = embed(current)
            if writing is not None:  # one batch written while the next is embedded, no more
                writing.result()
            writing = writer.submit(store.write, collection, images, model=env["MODEL_NAME"])
        if writing is not None:
            writing.result()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    if store.count() != len(files):
        raise RuntimeError(f"{store.count()} points for {len(files)} files")
    store.close()
    print(json.dumps({"images_per_s": len(files) / elapsed, "seconds": elapsed, "cpu_s": cpu}))


if __name__ == "__main__":
    main(sys.argv[1:])
