"""Two indexer consumers race on ONE store, and no URL is lost.

Production runs indexer replicas against one Qdrant server. Here no server can run, and an
embedded folder opens in one process only, so two real :class:`indexer.consumer.Indexer`
consumers run in this one process, each with its own RabbitMQ connection, batches and store
thread, sharing one Qdrant Edge engine (the embedded default). Every engine call is made atomic by
a lock, as a server makes each request atomic, and the window between a writer's read and its conditional write is
widened a little (a pause after each read), so the writers really do change points under each
other: the test requires that the conditional-write path had to merge again at least once.
The images come from many URLs each (one message per URL), spread over the queue, so both
consumers write the same points at once.
"""

from __future__ import annotations

import asyncio
import logging
import random
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.settings import QdrantSettings, RabbitSettings, load_settings
from dyimages_common.store.engine import Engine
from dyimages_common.store.factory import open_engine
from dyimages_common.store.index import ImageIndex
from dyimages_common.store.types import PointFilter
from indexer.consumer import Indexer
from indexer.settings import IndexerSettings
from testkit.messages import publish, stored_image

pytestmark = pytest.mark.integration

IMAGES = 12
URLS_PER_IMAGE = 8


class SharedEngine:
    """One embedded engine for two writers: each call atomic (as a server request is), a short
    pause after every read so the other writer can act between this one's read and write."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._engine, name)
        if not callable(method):
            return method

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                result = method(*args, **kwargs)
            if name == "retrieve":
                time.sleep(0.002)
            return result

        return call

    def close(self) -> None:
        """Each consumer closes its store; the test closes the real engine once, at the end."""


def _messages(images_dir: Path) -> list[ImageDownloaded]:
    events = []
    for seed in range(IMAGES):
        event = stored_image(images_dir, 9_000 + seed)
        events += [
            event.model_copy(update={"url": f"https://host{n % 3}.example/{seed}/{n}.jpg"})
            for n in range(URLS_PER_IMAGE)
        ]
    random.Random(7).shuffle(events)
    return events


async def _race(settings: IndexerSettings, client: SharedEngine) -> list[Indexer]:
    consumers = [Indexer(settings, exit_when_idle=True) for _ in range(2)]
    for consumer in consumers:
        consumer._store._index = ImageIndex(client, "images")  # type: ignore[arg-type]  # both write through one store
    statuses = await asyncio.gather(*(consumer.run() for consumer in consumers))
    assert statuses == [0, 0]
    return consumers


def test_two_consumers_writing_the_same_points_into_one_store_lose_no_url(
    rabbit_environment: dict[str, str],
    embedding_service,
    shared_images_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = _messages(shared_images_dir)
    rabbit = load_settings(RabbitSettings, rabbitmq_host="127.0.0.1")
    asyncio.run(publish(rabbit, events))
    settings = load_settings(
        IndexerSettings,
        embedding_service_url=embedding_service.url,
        qdrant_path=tmp_path / "unused",  # the shared client below is used instead
        indexer_batch_size=4,
        indexer_batch_wait_ms=20,
        indexer_concurrency=2,
        indexer_idle_exit_s=1,
        indexer_retry_max_s=1,
    )
    real = open_engine(load_settings(QdrantSettings, qdrant_path=tmp_path / "store"))
    caplog.set_level(logging.INFO, logger="dyimages_common.store.writes")
    try:
        consumers = asyncio.run(_race(settings, SharedEngine(real)))
        serving = real.names()["images"]
        rows, _ = real.scroll(serving, PointFilter(), limit=1000, offset=None)
        points = real.retrieve(serving, [row.id for row in rows], vectors=True)
    finally:
        real.close()

    assert all(consumer.progress.indexed > 0 for consumer in consumers), "both consumers took part"
    merged_again = [r for r in caplog.records if "changed by another writer meanwhile" in r.getMessage()]
    assert merged_again, "the writers never contended: the race this test is about did not run"

    expected: dict[str, set[str]] = {}
    for event in events:
        expected.setdefault(event.sha256, set()).add(event.url)
    assert {point.payload["sha256"]: set(point.payload["urls"]) for point in points} == expected
    for point in points:
        payload = point.payload
        assert len(payload["urls"]) == URLS_PER_IMAGE  # no URL lost, none twice
        assert payload["url"] == payload["urls"][0]
        assert sorted(payload["domains"]) == ["host0.example", "host1.example", "host2.example"]
    with EmbeddingClient(embedding_service.url) as reference:  # each vector is its image's
        fresh = reference.embed_image_paths([point.payload["path"] for point in points]).vectors
    for point, vector in zip(points, fresh, strict=True):
        np.testing.assert_allclose(point.vector, vector, atol=1e-5)
