"""Models never mix: vectors of other weights, of the very same size, never reach or query the index.

Two real embedding services run the same tiny model config (``dy-tiny``, 512-dimensional vectors):
the session's with random weights (``MODEL_PRETRAINED=none``), and a second one with other
weights (a checkpoint file of another seed). Only the answer's ``model``/``pretrained`` tell them
apart, which is what replicas with different weights behind one load balancer look like.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import open_clip
import pytest
import torch
from qdrant_client import QdrantClient, models

from dyimages_common import exit_codes
from dyimages_common.embedding_api import EmbeddingClient
from dyimages_common.points import point_id
from dyimages_common.qdrant import connect_qdrant, ensure_collection
from dyimages_common.rabbit import queue_depths
from dyimages_common.settings import QdrantSettings, RabbitSettings, load_settings
from search_app.search import IndexMismatch, Query, ServiceEmbedder, search
from testkit import TINY_MODEL, TINY_MODEL_CONFIG
from testkit.embedding import EmbeddingService, run_embedding_service
from testkit.messages import publish, stored_image
from testkit.procs import start_module, stop
from testkit.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

RECIPE = "dyimages drop --yes"


@pytest.fixture(scope="module")
def other_weights(shared_images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingService]:
    """A second real service: the same model name and vector size, other weights."""
    root = tmp_path_factory.mktemp("other-weights")
    open_clip.add_model_config(TINY_MODEL_CONFIG)
    torch.manual_seed(1)
    checkpoint = root / "dy-tiny-seed-1.pt"
    torch.save(open_clip.create_model(TINY_MODEL, pretrained=None).state_dict(), checkpoint)
    with run_embedding_service(shared_images_dir, root, MODEL_PRETRAINED=str(checkpoint)) as service:
        yield service


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


def _wait_for(log_path: Path, text: str, process, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (log_path.read_text(errors="replace") if log_path.exists() else ""):
        assert process.poll() is None, log_path.read_text(errors="replace")[-3000:]
        assert time.monotonic() < deadline, f"{text!r} not logged:\n{log_path.read_text(errors='replace')[-3000:]}"
        time.sleep(0.1)


def test_the_services_differ_only_in_their_weights(embedding_service: EmbeddingService, other_weights) -> None:
    with EmbeddingClient(embedding_service.url) as a, EmbeddingClient(other_weights.url) as b:
        info_a, info_b = a.info(), b.info()
        assert (info_a.model, info_a.dim) == (info_b.model, info_b.dim)
        assert info_a.pretrained != info_b.pretrained
        vector_a, vector_b = a.embed_texts(["a photo"])[0], b.embed_texts(["a photo"])[0]
        assert float(vector_a @ vector_b) < 0.99  # other weights: other vectors
        assert a.answered_by == info_a.identity
        assert b.answered_by == info_b.identity


def test_the_indexer_refuses_answers_of_other_weights_behind_its_url_and_returns_the_batch(
    embedding_service: EmbeddingService,
    other_weights: EmbeddingService,
    shared_images_dir: Path,
    rabbit_environment: dict[str, str],
    tmp_path: Path,
) -> None:
    proxy = TcpProxy("127.0.0.1", _port(embedding_service.url)).open()  # the "load balancer"
    qdrant_path = tmp_path / "qdrant"
    env = {
        **rabbit_environment,
        "EMBEDDING_SERVICE_URL": f"http://127.0.0.1:{proxy.port}",
        "QDRANT_PATH": str(qdrant_path),
        "INDEXER_BATCH_SIZE": "4",
        "INDEXER_BATCH_WAIT_MS": "50",
        "INDEXER_PROGRESS_INTERVAL_S": "0.2",
    }
    rabbit = load_settings(RabbitSettings, rabbitmq_host="127.0.0.1", rabbitmq_queue=env["RABBITMQ_QUEUE"])
    first = [stored_image(shared_images_dir, 8_000 + seed) for seed in range(5)]
    second = [stored_image(shared_images_dir, 8_100 + seed) for seed in range(5)]
    log_path = tmp_path / "indexer.log"
    indexer = start_module("indexer", env=env, log_path=log_path)
    try:
        asyncio.run(publish(rabbit, first))
        _wait_for(log_path, "indexed 5 (", indexer)
        proxy.drop()  # the balancer now sends every request to the replica with other weights
        proxy.target = ("127.0.0.1", _port(other_weights.url))
        proxy.open()
        asyncio.run(publish(rabbit, second))
        assert indexer.wait(timeout=120) == exit_codes.MODEL_MISMATCH
    finally:
        stop(indexer)
        proxy.close()

    log = log_path.read_text()
    assert "refusing to mix them" in log
    assert RECIPE in log
    assert asyncio.run(queue_depths(rabbit)) == {"queued": 5, "dead_lettered": 0}  # back in the queue
    client = connect_qdrant(load_settings(QdrantSettings, qdrant_path=qdrant_path))
    try:
        points, _ = client.scroll("images", limit=100, with_payload=True, with_vectors=True)
    finally:
        client.close()
    assert {point.payload["sha256"] for point in points} == {event.sha256 for event in first}
    with EmbeddingClient(embedding_service.url) as reference:
        fresh = reference.embed_image_paths([point.payload["path"] for point in points]).vectors
    for point, vector in zip(points, fresh, strict=True):  # every stored vector is the collection model's
        np.testing.assert_allclose(point.vector, vector, atol=1e-5)


def test_a_search_whose_query_vector_comes_from_other_weights_is_refused_with_the_reindex_recipe(
    embedding_service: EmbeddingService, other_weights: EmbeddingService
) -> None:
    qdrant = QdrantClient(":memory:")
    with EmbeddingClient(embedding_service.url) as a, EmbeddingClient(other_weights.url) as b:
        info = a.info()
        ensure_collection(qdrant, "images", dim=info.dim, model=info.model, pretrained=info.pretrained)
        vector = a.embed_texts(["a red bicycle"])[0]
        qdrant.upsert(
            "images", [models.PointStruct(id=point_id("0" * 64), vector=vector.tolist(), payload={"sha256": "0" * 64})]
        )
        hits = search(qdrant, "images", ServiceEmbedder(a), Query(text="a red bicycle"), limit=1)
        assert [hit.sha256 for hit in hits] == ["0" * 64]
        with pytest.raises(IndexMismatch, match=RECIPE) as refused:
            search(qdrant, "images", ServiceEmbedder(b), Query(text="a red bicycle"), limit=1)
        assert b.info().pretrained in str(refused.value)
    qdrant.close()
