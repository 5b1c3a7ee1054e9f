"""The end-to-end side of ``bench ingest``: URL file to searchable points through every real process.

See :mod:`bench.ingest` for what is measured. A round starts the indexer (a queue of its own), starts the
clock with the downloader, stops it when the indexer's /metrics count the N-th image written, then
checks the store holds exactly the N images. CPU is sampled per process (with its children).
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.factory import open_store
from testkit.procs import free_port, start_module, stop
from testkit.rabbit import delete_topology, rabbit_env, unique_queue_name

INDEXED = re.compile(r"^dyimages_indexer_indexed_total ([0-9.e+]+)$", re.MULTILINE)


def _indexed(metrics_url: str) -> float:
    try:
        match = INDEXED.search(httpx.get(metrics_url, timeout=5).text)
    except httpx.TransportError:
        return 0.0
    return float(match[1]) if match else 0.0


def _wait_for_log(path: Path, text: str, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in (path.read_text(errors="replace") if path.exists() else ""):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{path.name}: no {text!r}:\n{path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


class _CpuMeter:
    """CPU seconds each process (with its children) used since the meter started, sampled by polling."""

    def __init__(self) -> None:
        self._processes: dict[str, psutil.Process] = {}
        self._start: dict[str, float] = {}
        self.used: dict[str, float] = {}

    @staticmethod
    def _seconds(process: psutil.Process) -> float:
        total = 0.0
        for member in [process, *process.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = member.cpu_times()
                total += times.user + times.system
        return total

    def watch_broker(self) -> None:
        """RabbitMQ's Erlang VM (``beam.smp``), when it runs on this machine."""
        for process in psutil.process_iter(["name"]):
            if process.info["name"] == "beam.smp":
                self.watch("rabbitmq", process.pid)
                return
        raise RuntimeError("no RabbitMQ process (beam.smp) on this machine to count")

    def watch(self, name: str, pid: int) -> None:
        self._processes[name] = psutil.Process(pid)
        self._start[name] = self._seconds(self._processes[name])
        self.used[name] = 0.0

    def sample(self) -> None:
        for name, process in self._processes.items():
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    self.used[name] = max(self.used[name], self._seconds(process) - self._start[name])


def e2e_round(
    urls: list[str],
    expected: set[str],
    images_dir: Path,
    embedding: subprocess.Popen[bytes],
    embedding_url: str,
    batch: int,
    workdir: Path,
    server_pid: int,
) -> dict[str, float]:
    """URL file to N searchable points: images/s, and the CPU seconds of each process."""
    run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="e2e-"))
    shutil.rmtree(images_dir)
    images_dir.mkdir()
    queue = unique_queue_name("bench-ingest")
    metrics_port = free_port()
    qdrant_path = run_dir / "qdrant"
    (run_dir / "urls.txt").write_text("\n".join(urls) + "\n")
    indexer_log = run_dir / "indexer.log"
    indexer = start_module(
        "indexer",
        env={
            **rabbit_env(queue),
            "EMBEDDING_SERVICE_URL": embedding_url,
            "QDRANT_PATH": str(qdrant_path),
            "METRICS_PORT": str(metrics_port),
            "INDEXER_BATCH_SIZE": str(batch),
            "INDEXER_PROGRESS_INTERVAL_S": "10",
        },
        log_path=indexer_log,
    )
    downloader = None
    try:
        _wait_for_log(indexer_log, "consuming", indexer)
        cpu = _CpuMeter()
        cpu.watch("indexer", indexer.pid)
        cpu.watch("embedding", embedding.pid)
        cpu.watch("image_server", server_pid)
        cpu.watch_broker()
        started = time.monotonic()
        downloader = start_module(
            "downloader",
            "--once",
            env={
                **rabbit_env(queue),
                "URLS_FILE": str(run_dir / "urls.txt"),
                "IMAGES_DIR": str(images_dir),
                "DOWNLOADER_ALLOWED_NETWORKS": "127.0.0.1/32",
                "DOWNLOADER_PER_HOST": "64",  # one local server stands in for many hosts
                "LOG_LEVEL": "WARNING",
            },
            log_path=run_dir / "downloader.log",
        )
        cpu.watch("downloader", downloader.pid)
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        deadline = started + 3600
        while _indexed(metrics_url) < len(urls):
            if indexer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the indexer stopped short:\n{indexer_log.read_text()[-3000:]}")
            if downloader.poll() not in (None, 0):
                raise RuntimeError(f"the downloader failed:\n{(run_dir / 'downloader.log').read_text()[-3000:]}")
            cpu.sample()
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        cpu.sample()
        if downloader.wait(timeout=60) != 0:
            raise RuntimeError(f"the downloader failed:\n{(run_dir / 'downloader.log').read_text()[-3000:]}")
    finally:
        if downloader is not None:
            stop(downloader)
        stop(indexer, signal.SIGTERM)
        delete_topology(queue)
    index = open_store(load_settings(QdrantSettings, qdrant_path=qdrant_path))
    try:
        found = [point.sha256 for _, point in index.points()]
    finally:
        index.close()
    if len(found) != len(expected) or set(found) != expected:
        raise RuntimeError(f"{len(found)} points for {len(expected)} images")
    shutil.rmtree(run_dir, ignore_errors=True)
    return {"images_per_s": len(urls) / elapsed, "seconds": elapsed, **{f"cpu_s_{k}": v for k, v in cpu.used.items()}}
