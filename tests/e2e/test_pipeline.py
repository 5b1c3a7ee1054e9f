"""The real topology without Docker: HTTP server → downloader → RabbitMQ → indexer ↔ embedding → Qdrant.

Every hop is real: a local HTTP server on 127.0.0.1 serves generated images, `python -m downloader
--once` fetches them and publishes to the real RabbitMQ (a queue of this test's own), the real LitServe
embedding process (tiny OpenCLIP model, random weights) embeds them, `python -m indexer
--exit-when-idle` writes to an embedded Qdrant folder. Then every point is checked against its
image (every URL, its own vector), and a search with a re-encoded, resized copy of an image (other
bytes, so not a cosine of 1.0 by construction) finds the original first.
"""

from __future__ import annotations

import asyncio
import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import sha256_hex
from dyimages_common.messaging.rabbit import queue_depths
from dyimages_common.settings import RabbitSettings, load_settings
from dyimages_common.store.types import PointFilter
from dyimages_common.urls.state import recent_failures, status_counts
from testkit.embedding import run_embedding_service
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg, png, webp
from testkit.stores import raw_points

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


def _resized_copy(data: bytes, scale: float, fmt: str) -> bytes:
    """The same picture at another size and encoding: other bytes, another sha256, nearly the same vector."""
    image = Image.open(io.BytesIO(data)).convert("RGB")
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, quality=80)
    return buffer.getvalue()


def test_urls_become_searchable_images_with_every_url_and_their_own_vector(
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

        # Point ids are uuid5(sha256): one per image by construction. What can go wrong instead: a URL
        # lost from `urls`, or a point whose vector is not its image's.
        with raw_points(qdrant_path) as client:
            points = client.every_point()
            urls_of = {sha256_hex(body): {image_server.url(path)} for path, body in images.items()}
            urls_of[sha256_hex(images["/img/0.jpg"])].add(image_server.url("/img/same-bytes-again.jpg"))
            assert {point.payload["sha256"]: set(point.payload["urls"]) for point in points} == urls_of
            with EmbeddingClient(embedding.url) as embedder:
                fresh = embedder.embed_image_paths([point.payload["path"] for point in points]).vectors
                for point, vector in zip(points, fresh, strict=True):
                    np.testing.assert_allclose(point.vector, vector, atol=1e-5, err_msg=point.payload["path"])

                # A search with a resized, re-encoded copy (other bytes) finds the original first.
                for name, scale, fmt in (("/img/3.jpg", 0.75, "JPEG"), ("/img/p.png", 1.5, "WEBP")):
                    copy = _resized_copy(images[name], scale, fmt)
                    assert sha256_hex(copy) != sha256_hex(images[name])
                    query = embedder.embed_image_bytes(copy)
                    hits = client.engine.query(
                        client.collection,
                        query,
                        PointFilter(),
                        min_score=None,
                        limit=3,
                        offset=0,
                        words=(),
                        depth=3,
                        vectors=False,
                    )
                    assert hits[0].payload["sha256"] == sha256_hex(images[name])

    depths = asyncio.run(queue_depths(load_settings(RabbitSettings, **_rabbit_overrides(rabbit_queue))))
    assert depths == {"queued": 0, "dead_lettered": 0}


def _rabbit_overrides(queue: str) -> dict[str, object]:
    return {"rabbitmq_host": "127.0.0.1", "rabbitmq_queue": queue}
