"""The real topology without Docker: HTTP server → downloader → RabbitMQ → indexer ↔ embedding → Qdrant.

Every hop is real: a local HTTP server on 127.0.0.1 serves generated images, `python -m downloader
--once` fetches them and publishes to the real RabbitMQ (a queue of this test's own), the real LitServe
embedding process (tiny OpenCLIP model, random weights) embeds them, `python -m indexer
--exit-when-idle` writes to an embedded Qdrant folder. Then a search finds each image first.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from dyimages_common.embedding_api import EmbeddingClient
from dyimages_common.qdrant import connect_qdrant
from dyimages_common.rabbit import queue_depths
from dyimages_common.settings import QdrantSettings, RabbitSettings, load_settings
from dyimages_common.storage import sha256_hex
from dyimages_common.url_state import recent_failures, status_counts
from testkit.embedding import run_embedding_service
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg, png, webp

pytestmark = pytest.mark.e2e


def run_module(module: str, *args: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_urls_become_searchable_images_exactly_once(
    tmp_path: Path, images_dir: Path, qdrant_path: Path, rabbit_queue: str, image_server: ImageServer
) -> None:
    images = {f"/img/{i}.jpg": jpeg(i, size=(96, 72)) for i in range(12)}
    images["/img/p.png"] = png(100)
    images["/img/w.webp"] = webp(101)
    for path, body in images.items():
        image_server.add(path, Route(body=body))
    image_server.add("/img/same-bytes-again.jpg", Route(body=images["/img/0.jpg"]))
    image_server.add("/not-an-image.jpg", Route(body=b"<html>nope</html>", content_type="image/jpeg"))
    urls = [image_server.url(p) for p in images] + [
        image_server.url("/img/same-bytes-again.jpg"),
        image_server.url("/not-an-image.jpg"),
        image_server.url("/missing.jpg"),
    ]
    urls_file = tmp_path / "image_urls.txt"
    urls_file.write_text("# test list\n\n" + "\n".join(urls) + "\nnot a url\n")

    env = {
        "RABBITMQ_HOST": "127.0.0.1",
        "RABBITMQ_USER": "guest",
        "RABBITMQ_PASSWORD": "guest",
        "RABBITMQ_QUEUE": rabbit_queue,
        "IMAGES_DIR": str(images_dir),
        "URLS_FILE": str(urls_file),
        "DOWNLOADER_ALLOWED_NETWORKS": "127.0.0.1/32",
        "QDRANT_PATH": str(qdrant_path),
    }
    with run_embedding_service(images_dir, tmp_path) as embedding:
        env["EMBEDDING_SERVICE_URL"] = embedding.url
        downloaded = run_module("downloader", "--once", env=env, timeout=180)
        assert downloaded.returncode == 0, downloaded.stderr[-3000:]
        indexed = run_module("indexer", "--exit-when-idle", env=env, timeout=180)
        assert indexed.returncode == 0, indexed.stderr[-3000:]

        # The downloader accounted for every URL: good ones done, bad ones failed with a reason.
        state_db = images_dir / ".state" / "downloader.sqlite3"
        counts = status_counts(state_db)
        assert counts["done"] == len(images) + 1  # the duplicate URL is done too, same file
        assert counts["failed"] == 2
        reasons = {failure.url: failure.reason for failure in recent_failures(state_db)}
        assert set(reasons) == {image_server.url("/not-an-image.jpg"), image_server.url("/missing.jpg")}
        assert all(reasons.values())

        # Every distinct image is exactly one point, with both URLs for the shared bytes.
        client = connect_qdrant(load_settings(QdrantSettings, qdrant_path=qdrant_path))
        try:
            points, _ = client.scroll("images", limit=1000, with_payload=True)
            shas = Counter(point.payload["sha256"] for point in points)
            assert set(shas) == {sha256_hex(body) for body in images.values()}
            assert max(shas.values()) == 1
            shared = next(p.payload for p in points if p.payload["sha256"] == sha256_hex(images["/img/0.jpg"]))
            assert sorted(shared["urls"]) == sorted(
                [image_server.url("/img/0.jpg"), image_server.url("/img/same-bytes-again.jpg")]
            )

            # A search with one of the images finds it first.
            with EmbeddingClient(embedding.url) as embedder:
                for name in ("/img/3.jpg", "/img/p.png"):
                    query = embedder.embed_image_bytes(images[name])
                    hits = client.query_points("images", query=query.tolist(), limit=3).points
                    assert hits[0].payload["sha256"] == sha256_hex(images[name])
        finally:
            client.close()

    depths = asyncio.run(queue_depths(load_settings(RabbitSettings, **_rabbit_overrides(rabbit_queue))))
    assert depths == {"queued": 0, "dead_lettered": 0}


def _rabbit_overrides(queue: str) -> dict[str, object]:
    return {"rabbitmq_host": "127.0.0.1", "rabbitmq_queue": queue}
