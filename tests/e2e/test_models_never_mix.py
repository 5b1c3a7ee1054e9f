"""Models never mix: vectors of other weights, of the very same size, never reach or query the index.

Two real embedding services run the same tiny model config (``dy-tiny``, 512-dimensional vectors):
the session's with random weights (``MODEL_PRETRAINED=none``), and a second one with other
weights (a checkpoint file of another seed). Only the answer's ``model``/``pretrained`` tell them
apart, which is what replicas with different weights behind one load balancer look like.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import open_clip
import pytest
import torch

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.messaging.rabbit import queue_depths
from dyimages_common.process import exit_codes
from dyimages_common.settings import QdrantSettings, RabbitSettings, load_settings
from dyimages_common.store import builds as index_builds
from dyimages_common.store.factory import open_store
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import ImageVector
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import IndexMismatch, ServiceEmbedder
from testkit import TINY_MODEL, TINY_MODEL_CONFIG
from testkit.embedding import EmbeddingService, run_embedding_service
from testkit.messages import publish, stored_image
from testkit.procs import start_module, stop
from testkit.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e

RECIPE = "dyimages reindex"


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
    _assert_vectors_of(embedding_service, qdrant_path, {event.sha256 for event in first})


def _open(qdrant_path: Path) -> ImageStore:
    return open_store(load_settings(QdrantSettings, qdrant_path=qdrant_path))


def _assert_vectors_of(service: EmbeddingService, qdrant_path: Path, shas: set[str]) -> None:
    """The serving collection holds exactly these images, each with the vector ``service`` makes of it."""
    index = _open(qdrant_path)
    try:
        points = [point for _, point in index.points()]
        vectors = [index.vector_of(point.sha256) for point in points]
    finally:
        index.close()
    assert {point.sha256 for point in points} == shas
    with EmbeddingClient(service.url) as reference:
        fresh = reference.embed_image_paths([point.path for point in points]).vectors
    for stored, vector in zip(vectors, fresh, strict=True):  # every stored vector is the collection model's
        np.testing.assert_allclose(stored, vector, atol=1e-5)


def test_a_search_whose_query_vector_comes_from_other_weights_is_refused_with_the_reindex_recipe(
    embedding_service: EmbeddingService, other_weights: EmbeddingService, shared_images_dir: Path, tmp_path: Path
) -> None:
    qdrant = _open(tmp_path / "qdrant")
    with EmbeddingClient(embedding_service.url) as a, EmbeddingClient(other_weights.url) as b:
        info = a.info()
        identity = {"dim": info.dim, "model": info.model, "pretrained": info.pretrained}
        (target,) = index_builds.write_targets(qdrant, **identity)
        event = stored_image(shared_images_dir, 8_200)
        qdrant.write(
            target, [ImageVector(event.sha256, a.embed_texts(["a red bicycle"])[0], [event])], model=info.model
        )
        hits = search(qdrant, ServiceEmbedder(a), Query(text="a red bicycle"), limit=1)
        assert [hit.sha256 for hit in hits] == [event.sha256]
        with pytest.raises(IndexMismatch, match=RECIPE) as refused:
            search(qdrant, ServiceEmbedder(b), Query(text="a red bicycle"), limit=1)
        assert b.info().pretrained in str(refused.value)
    qdrant.close()


def _dyimages(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search_app.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def _search(qdrant_path: Path, service: EmbeddingService) -> list[str]:
    """The app's search with ``service``'s query vectors; the sha256s found (IndexMismatch when refused)."""
    index = _open(qdrant_path)
    try:
        with EmbeddingClient(service.url) as embedding:
            hits = search(index, ServiceEmbedder(embedding), Query(text="a photo"), limit=20)
        return sorted(hit.sha256 for hit in hits)
    finally:
        index.close()


def test_a_model_change_is_built_beside_the_old_index_which_serves_until_the_swap(
    embedding_service: EmbeddingService,
    other_weights: EmbeddingService,
    shared_images_dir: Path,
    rabbit_environment: dict[str, str],
    tmp_path: Path,
) -> None:
    """The embedded folder takes one process at a time, so each step runs on its own (real processes: the
    indexer, `dyimages reindex`); searches are made between the steps, as the app would make them."""
    qdrant_path = tmp_path / "qdrant"
    env = {
        **rabbit_environment,
        "EMBEDDING_SERVICE_URL": embedding_service.url,
        "QDRANT_PATH": str(qdrant_path),
        "IMAGES_DIR": str(shared_images_dir),
        "STATE_DB": str(tmp_path / "state.sqlite3"),  # none: reindex takes the URLs from the index
        "INDEXER_IDLE_EXIT_S": "0.5",
        "INDEXER_BATCH_WAIT_MS": "50",
        "LOG_LEVEL": "WARNING",
    }
    rabbit = load_settings(RabbitSettings, rabbitmq_host="127.0.0.1", rabbitmq_queue=env["RABBITMQ_QUEUE"])
    images = {stored_image(shared_images_dir, 8_300 + seed).sha256 for seed in range(4)}
    asyncio.run(publish(rabbit, [stored_image(shared_images_dir, 8_300 + seed) for seed in range(4)]))
    assert start_module("indexer", "--exit-when-idle", env=env, log_path=tmp_path / "i1.log").wait(120) == 0
    assert _search(qdrant_path, embedding_service) == sorted(images)

    new_model = {**env, "EMBEDDING_SERVICE_URL": other_weights.url}  # the model changes
    # A reindex killed right after it made the new collection: the old one still serves, untouched.
    killed = subprocess.Popen(
        [sys.executable, "-m", "search_app.cli.main", "reindex"],
        env={**os.environ, **new_model},
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    assert killed.stdout is not None
    first_line = killed.stdout.readline()
    killed.kill()
    killed.wait()
    assert first_line.startswith("building images_"), first_line
    assert _search(qdrant_path, embedding_service) == sorted(images)
    with pytest.raises(IndexMismatch):  # the new model's queries do not go to the old model's index
        _search(qdrant_path, other_weights)

    again = _dyimages(new_model, "reindex")  # runs again: resumes the same collection
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("resuming " + first_line.split()[1])
    assert "republished 4 of" in again.stdout
    early = _dyimages(new_model, "reindex", "--finish")
    assert early.returncode == exit_codes.REFUSED, early.stdout
    assert "4 of 4 images are not in the new collection yet" in early.stderr
    assert _search(qdrant_path, embedding_service) == sorted(images)  # a failed finish swaps nothing

    indexer = start_module("indexer", "--exit-when-idle", env=new_model, log_path=tmp_path / "i2.log")
    assert indexer.wait(120) == 0, (tmp_path / "i2.log").read_text()[-3000:]
    _assert_vectors_of(embedding_service, qdrant_path, images)  # the old collection is still the old model's
    done = _dyimages(new_model, "reindex", "--finish")
    assert done.returncode == 0, done.stderr
    assert f"images now searches {first_line.split()[1]}" in done.stdout
    _assert_vectors_of(other_weights, qdrant_path, images)  # after the swap: the new collection, the new model
    assert _search(qdrant_path, other_weights) == sorted(images)
    with pytest.raises(IndexMismatch):
        _search(qdrant_path, embedding_service)
