"""A Ray replica SIGKILLed while it embeds a batch loses nothing: the soak's checks, with the Ray backend.

Real processes throughout: the downloader fetches a library from a local HTTP server into a queue of
this test's own on the real RabbitMQ; the real indexer embeds it through Serve's proxy, two replicas
behind it (one on the head, one on the worker node). While the indexer works, one replica's process
is SIGKILLed, as the OOM killer would; a kill counts only when it cut a request short (the indexer
counts a retry of the embedding service). Serve replaces the replica, the indexer retries, and
``dyimages audit``'s own checks (``bench.soak_checks.audit_run``) must find the books balanced: every
URL done, every image indexed with its URL, no dead letter, nothing left in the queue.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from bench.soak.checks import audit_run
from bench.soak.services import RunDirs, Service, downloader_env, indexer_env, metric_total, scrape, wait_for_metrics
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import free_port
from testkit.rabbit import delete_topology, require_rabbitmq, unique_queue_name
from testkit.ray_cluster import RayCluster

pytestmark = pytest.mark.e2e

IMAGES = 400
MOST_KILLS = 6


def _retries(metrics_port: int) -> float:
    samples = scrape(metrics_port, timeout=2.0)
    retries = samples.get("dyimages_indexer_retries_total", {})
    return sum(value for labels, value in retries.items() if ("target", "embedding") in labels)


def _indexed(metrics_port: int) -> float:
    return metric_total(scrape(metrics_port, timeout=2.0), "dyimages_indexer_indexed_total")


def test_a_replica_killed_in_the_middle_of_a_batch_loses_nothing(ray: RayCluster, tmp_path: Path) -> None:
    require_rabbitmq()
    dirs = RunDirs(tmp_path / "run")
    queue = unique_queue_name("ray-kill")
    replicas = {"EMBEDDING_RAY_MIN_REPLICAS": "2", "EMBEDDING_RAY_MAX_REPLICAS": "2"}
    with ImageServer() as server, ray.service("killed", dirs.images, **replicas) as embedding:
        # Photos of a real size: decoding them keeps each request in the replica for a while.
        urls = [server.add(f"/p/{i}.jpg", Route(body=jpeg(i, size=(640, 480)))) for i in range(IMAGES)]
        dirs.urls_file.parent.mkdir(parents=True, exist_ok=True)
        dirs.urls_file.write_text("\n".join(urls) + "\n")
        downloader = Service("downloader", "downloader", downloader_env(dirs, queue, free_port()), dirs.logs)
        metrics_port = free_port()
        env = indexer_env(dirs, queue, embedding.url, metrics_port, INDEXER_BATCH_SIZE="16", INDEXER_RETRY_MAX_S="1")
        indexer = Service("indexer", "indexer", env, dirs.logs)
        try:
            assert len(ray.replica_pids("killed")) == 2
            downloader.args = ("--once",)
            downloader.start()
            assert downloader.wait(timeout=240) == 0
            indexer.start()
            wait_for_metrics(metrics_port, indexer)
            killed = _kill_while_embedding(ray, metrics_port)
            _wait_until_indexed(metrics_port, IMAGES, indexer)
            assert indexer.terminate(timeout=60) == 0
        finally:
            downloader.terminate(timeout=10)
            indexer.terminate(timeout=10)
        replaced = ray.replica_pids("killed")
        assert killed not in replaced
        assert httpx.get(f"{embedding.url}/health", timeout=10).status_code == 200
    try:
        audited = audit_run(dirs.urls_file, dirs.images, dirs.state_db, dirs.qdrant, queue)
    finally:
        delete_topology(queue)
    assert audited.report.problems == []
    assert {what: n for what, n in audited.report.in_flight.items() if n} == {}
    assert len({point.sha256 for point in audited.ledgers.points}) == IMAGES
    assert audited.ledgers.dead_letters == []


def _kill_while_embedding(ray: RayCluster, metrics_port: int) -> int:
    """SIGKILL the busier replica as soon as the indexer embeds, until a kill cut a request short; its pid.

    The indexer keeps two batches in flight, one per replica, so the replica using CPU holds one; a kill
    that cut nothing short (the batch had just been answered) is followed by another.
    """
    for _ in range(MOST_KILLS):
        # Not waiting for a killed replica's replacement: with the tiny model the other one could finish
        # the whole library meanwhile. With one left, it holds both batches in flight.
        while not (replicas := ray.replica_pids("killed")):
            time.sleep(0.1)
        while _indexed(metrics_port) < 1:  # the pipeline flows
            time.sleep(0.1)
        if _indexed(metrics_port) >= IMAGES:
            break
        before = _retries(metrics_port)
        victim = _busiest(replicas)
        try:
            os.kill(victim, signal.SIGKILL)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if _retries(metrics_port) > before:
                return victim
            time.sleep(0.2)
    raise AssertionError("no replica kill cut an /embed request short before the work was done")


def _busiest(pids: list[int]) -> int:
    """The replica that used the most CPU over a short look (the one embedding now)."""
    import psutil

    def cpu(pid: int) -> float:
        try:
            times = psutil.Process(pid).cpu_times()
        except psutil.NoSuchProcess:  # a replica that died meanwhile: never the busiest
            return float("-inf")
        return times.user + times.system

    first = {pid: cpu(pid) for pid in pids}
    time.sleep(0.3)
    return max(pids, key=lambda pid: cpu(pid) - first[pid])


def _wait_until_indexed(metrics_port: int, count: int, indexer: Service, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert indexer.running, f"the indexer exited (logs in {indexer.log_dir})"
        if _indexed(metrics_port) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"fewer than {count} images indexed after {timeout} s (logs in {indexer.log_dir})")
