"""A small indexed image library (for the app's tests), built by the real pipeline's back half.

Images are written content-addressed into the embedding service's images folder, their
``ImageDownloaded`` messages are published to the test's own queue, and the real indexer
(``python -m indexer --exit-when-idle``) embeds them through the real embedding service into an
embedded Qdrant folder, then exits and releases the folder for the app.
"""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import numpy as np

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.messaging.rabbit import REASON_HEADER, amqp_url, declare_topology
from dyimages_common.settings import QdrantSettings, RabbitSettings, load_settings
from dyimages_common.store.factory import open_store
from dyimages_common.store.points import point_id
from dyimages_common.store.protocol import ImageStore
from dyimages_common.urls import state as url_state
from testkit.images import jpeg, png
from testkit.messages import publish
from testkit.procs import start_module

COLLECTION = "app-test-images"


@dataclass(frozen=True)
class Picture:
    sha256: str
    path: str
    urls: tuple[str, ...]
    content_type: str
    width: int
    height: int
    data: bytes

    @property
    def id(self) -> str:
        return point_id(self.sha256)


@dataclass(frozen=True)
class PictureSpec:
    seed: int
    urls: tuple[str, ...]
    size: tuple[int, int] = (64, 48)
    fmt: str = "jpg"


@dataclass
class Library:
    env: dict[str, str]
    images_dir: Path
    qdrant_path: Path
    state_db: Path
    pictures: list[Picture] = field(default_factory=list)

    def rabbit_settings(self) -> RabbitSettings:
        return load_settings(RabbitSettings, **{k.lower(): v for k, v in self.env.items()})

    def by_sha(self, sha256: str) -> Picture:
        return next(p for p in self.pictures if p.sha256 == sha256)

    def open_index(self) -> ImageStore:
        """The library's index through the store seam (the embedded folder: no other process may hold it)."""
        return open_store(load_settings(QdrantSettings, qdrant_path=self.qdrant_path, qdrant_collection=COLLECTION))

    def vectors(self) -> dict[str, np.ndarray]:
        """Every indexed vector by sha256 (opens the folder briefly)."""
        index = self.open_index()
        try:
            vectors = {point.sha256: index.vector_of(point.sha256) for _, point in index.points()}
        finally:
            index.close()
        return {sha: vector for sha, vector in vectors.items() if vector is not None}

    def nearest(self, vector: np.ndarray) -> list[str]:
        """The oracle: sha256s by cosine similarity to ``vector``, computed here with numpy."""
        vectors = self.vectors()
        shas = list(vectors)
        matrix = np.stack([vectors[s] / np.linalg.norm(vectors[s]) for s in shas])
        scores = matrix @ (vector / np.linalg.norm(vector))
        return [shas[i] for i in np.argsort(-scores)]


def make_picture(images_dir: Path, spec: PictureSpec) -> Picture:
    data = png(spec.seed, spec.size) if spec.fmt == "png" else jpeg(spec.seed, spec.size)
    sha = sha256_hex(data)
    path = stored_path(sha, spec.fmt)
    write_atomic(images_dir, path, data)
    content_type = "image/png" if spec.fmt == "png" else "image/jpeg"
    return Picture(sha, path, spec.urls, content_type, spec.size[0], spec.size[1], data)


def messages(picture: Picture) -> list[ImageDownloaded]:
    return [
        ImageDownloaded(
            sha256=picture.sha256,
            path=picture.path,
            url=url,
            content_type=picture.content_type,
            width=picture.width,
            height=picture.height,
            bytes=len(picture.data),
            downloaded_at=datetime.now(UTC),
        )
        for url in picture.urls
    ]


def record_downloads(state_db: Path, pictures: list[Picture], failed: dict[str, str]) -> None:
    """Fill the downloader's state the way it records outcomes: done URLs and permanent failures."""
    connection = url_state.open_state(state_db)
    now = datetime.now(UTC).isoformat()
    with connection:
        for picture in pictures:
            for url in picture.urls:
                connection.execute(
                    "INSERT OR REPLACE INTO urls (url, status, sha256, path, attempts, published, updated_at) "
                    "VALUES (?, 'done', ?, ?, 1, 1, ?)",
                    (url, picture.sha256, picture.path, now),
                )
        for url, reason in failed.items():
            connection.execute(
                "INSERT OR REPLACE INTO urls (url, status, attempts, last_error, updated_at) "
                "VALUES (?, 'failed', 3, ?, ?)",
                (url, reason, now),
            )
    connection.close()


def run_indexer(env: dict[str, str], log_path: Path, timeout: float = 180) -> None:
    """The real indexer until the queue is drained; it then exits and frees the Qdrant folder."""
    process = start_module("indexer", "--exit-when-idle", env=env, log_path=log_path)
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise
    if code != 0:
        raise RuntimeError(f"indexer exited with {code}; see {log_path}:\n{log_path.read_text()[-3000:]}")


def index_pictures(library: Library, specs: list[PictureSpec], log_path: Path) -> list[Picture]:
    pictures = [make_picture(library.images_dir, spec) for spec in specs]
    asyncio.run(publish(library.rabbit_settings(), [m for picture in pictures for m in messages(picture)]))
    run_indexer(library.env, log_path)
    library.pictures += pictures
    return pictures


def dead_letter(library: Library, body: bytes, reason: str) -> None:
    """Put a message on the dead-letter queue the way the indexer does (reason header)."""

    async def _publish() -> None:
        connection = await aio_pika.connect(amqp_url(library.rabbit_settings()))
        async with connection:
            channel = await connection.channel()
            declared = await declare_topology(channel, library.env["RABBITMQ_QUEUE"])
            await declared.dead_letter_exchange.publish(
                aio_pika.Message(body, headers={REASON_HEADER: reason}, delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=declared.dead_letter_queue.name,
            )

    asyncio.run(_publish())


def library_env(
    *, images_dir: Path, qdrant_path: Path, state_db: Path, queue_env: dict[str, str], embedding_url: str
) -> dict[str, str]:
    return {
        **queue_env,
        "IMAGES_DIR": str(images_dir),
        "STATE_DB": str(state_db),
        "QDRANT_PATH": str(qdrant_path),
        "QDRANT_COLLECTION": COLLECTION,
        "EMBEDDING_SERVICE_URL": embedding_url,
        "EMBEDDING_TIMEOUT_S": "30",
        "INDEXER_IDLE_EXIT_S": "0.5",
        "INDEXER_BATCH_WAIT_MS": "50",
        "LOG_LEVEL": "WARNING",
    }
