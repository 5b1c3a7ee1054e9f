"""The indexer through faults, as real processes: outages, kills, signals, replicas.

Each test starts its own indexer processes on its own queue; the embedding service is the
session's, except in the outage test, which runs (and kills) its own.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from pathlib import Path

import httpx
import numpy as np
import pytest

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.messaging.messages import ImageDownloaded
from testkit.embedding import EmbeddingService, embedding_env
from testkit.procs import free_port, start_module, stop, wait_http_ok

pytestmark = pytest.mark.integration

CONSUMING = r"consuming test\."


def _shas(points) -> set[str]:
    return {point.payload["sha256"] for point in points}


def assert_points_account_for(points, events: list[ImageDownloaded], embedding: EmbeddingService) -> None:
    """Point ids cannot repeat (uuid5 of the sha256), so count nothing: check what can go wrong instead.

    Each image is one point whose ``urls`` hold every URL of its messages (none lost by a write
    that raced or was cut short), whose payload is whole (first URL, a revision token), and whose
    vector is its own image's (a fresh embedding of the stored file).
    """
    expected: dict[str, list[str]] = {}
    for event in events:
        expected.setdefault(event.sha256, [])
        if event.url not in expected[event.sha256]:
            expected[event.sha256].append(event.url)
    assert {point.payload["sha256"]: sorted(point.payload["urls"]) for point in points} == {
        sha: sorted(urls) for sha, urls in expected.items()
    }
    for point in points:
        assert point.payload["url"] == point.payload["urls"][0]
        assert re.fullmatch(r"[0-9a-f]{32}", point.payload["revision"])
    with EmbeddingClient(embedding.url) as client:
        for start in range(0, len(points), 128):
            chunk = points[start : start + 128]
            fresh = client.embed_image_paths([point.payload["path"] for point in chunk]).vectors
            for point, vector in zip(chunk, fresh, strict=True):
                np.testing.assert_allclose(point.vector, vector, atol=1e-5, err_msg=point.payload["sha256"])


def test_embedding_service_down_for_a_while_then_back(rig, processes) -> None:
    """Nothing is dropped or dead-lettered while the embedding service is away; SIGTERM then
    returns the batch that cannot finish to the queue."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"

    def start_embedding(name: str):
        process = start_module("embedding", env=embedding_env(rig.images_dir, port), log_path=rig.log_dir / name)
        processes.append(process)
        wait_http_ok(f"{url}/health", timeout=180, process=process)
        return process

    embedding = start_embedding("embedding-1.log")
    metrics_port = free_port()
    indexer, log = rig.start(EMBEDDING_SERVICE_URL=url, METRICS_PORT=str(metrics_port), INDEXER_SHUTDOWN_GRACE_S="1")
    processes.append(indexer)
    first, second, third = rig.images(6_000, 10), rig.images(6_100, 20), rig.images(6_200, 5)
    rig.publish(first)
    rig.wait_for_log(log, r"indexed 10 \(", process=indexer)

    stop(embedding)
    rig.publish(second)
    rig.wait_for_log(log, r"WARNING .*EmbeddingUnavailable", process=indexer)
    time.sleep(2)  # down a while: the indexer keeps backing off and holds its messages
    assert rig.depths()["dead_lettered"] == 0
    embedding = start_embedding("embedding-2.log")
    rig.wait_for_log(log, r"indexed 30 \(", timeout=90, process=indexer)

    exposition = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
    assert "dyimages_indexer_indexed_total 30.0" in exposition
    assert 'dyimages_indexer_retries_total{target="embedding"}' in exposition
    for name in ("batch_size", "embed_seconds", "upsert_seconds"):
        assert f"dyimages_indexer_{name}_count" in exposition
    assert "dyimages_indexer_queue_depth" in exposition

    stop(embedding)  # down again, and the indexer is told to stop mid-batch
    rig.publish(third)
    rig.wait_for_log(log, r"(?s)indexed 30 \(.*WARNING .*EmbeddingUnavailable", process=indexer)
    indexer.send_signal(signal.SIGTERM)
    assert rig.wait_for_exit(indexer, log, timeout=30) == 0
    assert "returning 5 unprocessed message(s)" in log.read_text()

    assert _shas(rig.points()) == {event.sha256 for event in first + second}
    assert rig.depths() == {"queued": 5, "dead_lettered": 0}


def test_killed_mid_batch_and_restarted_every_image_is_indexed_with_every_url_and_its_own_vector(
    rig, processes, many_images: list[ImageDownloaded], embedding_service: EmbeddingService
) -> None:
    # Every tenth image also comes from a mirror: a second message for the same bytes, anywhere in the queue.
    mirrors = [
        event.model_copy(update={"url": f"https://mirror.example/{event.sha256}.jpg"}) for event in many_images[::10]
    ]
    events = many_images + mirrors
    random.Random(11).shuffle(events)
    indexer, log = rig.start(INDEXER_BATCH_SIZE="4", INDEXER_CONCURRENCY="1")
    processes.append(indexer)
    rig.wait_for_log(log, CONSUMING, process=indexer)
    rig.publish(events)
    rig.wait_for_log(log, r"indexed [1-9]\d* \(", process=indexer)
    os.kill(indexer.pid, signal.SIGKILL)
    indexer.wait()
    assert 0 < rig.depths()["queued"] < len(events)  # killed mid-run, with work left

    result = rig.run()

    assert result.returncode == 0, result.stderr[-3000:]
    assert_points_account_for(rig.points(), events, embedding_service)
    assert rig.depths() == {"queued": 0, "dead_lettered": 0}


def test_sigterm_mid_run_finishes_batches_in_flight_and_returns_the_rest(
    rig, processes, many_images: list[ImageDownloaded]
) -> None:
    indexer, log = rig.start(INDEXER_BATCH_SIZE="4")
    processes.append(indexer)
    rig.wait_for_log(log, CONSUMING, process=indexer)
    rig.publish(many_images)
    rig.wait_for_log(log, r"indexed [1-9]\d* \(", process=indexer)
    indexer.send_signal(signal.SIGTERM)
    assert rig.wait_for_exit(indexer, log, timeout=30) == 0

    written = len(rig.points())
    returned = rig.depths()["queued"]
    # Every point written was acknowledged, every message not written is back in the queue.
    assert written + returned == len(many_images)
    assert returned > 0
    assert rig.run().returncode == 0
    assert _shas(rig.points()) == {event.sha256 for event in many_images}


def test_two_indexers_share_one_queue_without_loss_or_duplicates(
    rig, processes, many_images: list[ImageDownloaded], tmp_path: Path
) -> None:
    """Two indexer processes consume one queue at once, each writing its own Qdrant folder.

    This is about the queue, not the store: separate stores show a message handled by both
    replicas (it shows up in both; a shared store would hide it, the point id being the same) and
    one handled by neither (missing from the union). Two consumers racing on one store, merging
    URLs into the same points, is test_shared_store_race.py.
    """
    stores = {name: tmp_path / f"qdrant-{name}" for name in ("a", "b")}
    started = {
        # Idle exit well above the time between the two start-ups and the publish: on a busy machine
        # a replica idle for the default 1 s could leave before the first message reaches it.
        name: rig.start(
            "--exit-when-idle", name=name, QDRANT_PATH=str(path), INDEXER_BATCH_SIZE="4", INDEXER_IDLE_EXIT_S="8"
        )
        for name, path in stores.items()
    }
    processes.extend(process for process, _ in started.values())
    for process, log in started.values():
        rig.wait_for_log(log, CONSUMING, process=process)
    rig.publish(many_images)
    for process, log in started.values():
        assert rig.wait_for_exit(process, log) == 0

    a, b = (_shas(rig.points(path)) for path in stores.values())
    assert a, "replica a took part"
    assert b, "replica b took part"
    assert not a & b, "no image was indexed by both"
    assert a | b == {event.sha256 for event in many_images}
    assert rig.depths() == {"queued": 0, "dead_lettered": 0}
