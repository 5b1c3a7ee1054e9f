"""Downloader throughput and memory: ``python -m bench downloader [--quick] [--images N]``.

A local HTTP server (in its own process, so its CPU is not the downloader's) serves N distinct
small JPEGs with 0 ms and then 50 ms of added latency per response. For each latency, plain
aiohttp fetches every file once (the raw rate: what the network side allows), then the real
``python -m downloader --once`` handles the same URLs end to end: fetch, fully decode, hash,
write atomically, record in SQLite, publish to the real RabbitMQ with confirms (a queue of its
own, deleted afterwards). Its rate is N over the time from reading the URL file to its exit with
every message confirmed. Peak RSS is sampled from the downloader process (psutil, every 20 ms).

Both clients use the same concurrency (64) against one local host, so the downloader's per-host
limit is set to it too (the single server stands in for many hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import psutil

from dyimages_common.url_state import status_counts
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import start_module, stop
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name

CONCURRENCY = 64
IMAGE_SIZE = (320, 240)


def _write_images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{i:05d}.jpg"
        (folder / name).write_bytes(jpeg(i, IMAGE_SIZE, quality=85))
        names.append(name)
    return names


def serve(folder: str, latency: str, port_file: str) -> None:
    """Child process: serve every file in ``folder`` under /<name> until SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait, in every thread
    server = ImageServer(latency=float(latency)).start()
    for path in Path(folder).iterdir():
        server.add(f"/{path.name}", Route(body=path.read_bytes()))
    Path(port_file).write_text(str(server.port))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


class _ServerProcess:
    def __init__(self, folder: Path, latency: float, workdir: Path) -> None:
        self._port_file = workdir / f"port-{latency}"
        self._port_file.unlink(missing_ok=True)
        self._process = start_module(
            "bench.downloader", "serve", str(folder), str(latency), str(self._port_file), env={}
        )
        deadline = time.monotonic() + 60
        while not self._port_file.exists() or not self._port_file.read_text():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the image server process did not start")
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self._port_file.read_text()}"

    def stop(self) -> None:
        stop(self._process)


async def _raw_rate(urls: list[str]) -> float:
    """Images/s of plain aiohttp fetching every URL once, ``CONCURRENCY`` at a time."""
    slots = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def one(url: str) -> int:
            async with slots, session.get(url) as response:
                body = await response.read()
                response.raise_for_status()
                return len(body)

        started = time.monotonic()
        await asyncio.gather(*(one(url) for url in urls))
        return len(urls) / (time.monotonic() - started)


def _downloader_run(urls: list[str], workdir: Path) -> dict[str, float]:
    """Run ``python -m downloader --once`` over ``urls``; its rate and peak RSS."""
    require_rabbitmq()
    queue = unique_queue_name("bench-downloader")
    run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="run-"))
    (run_dir / "urls.txt").write_text("\n".join(urls) + "\n")
    env = {
        **rabbit_env(queue),
        "URLS_FILE": str(run_dir / "urls.txt"),
        "IMAGES_DIR": str(run_dir / "images"),
        "DOWNLOADER_ALLOWED_NETWORKS": "127.0.0.1/32",
        "DOWNLOADER_CONCURRENCY": str(CONCURRENCY),
        "DOWNLOADER_PER_HOST": str(CONCURRENCY),
        "DOWNLOADER_SUMMARY_S": "5",
        "METRICS_PORT": "0",
        "LOG_LEVEL": "WARNING",
    }
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    process = start_module("downloader", "--once", env=env, log_path=run_dir / "downloader.log")
    peak = 0
    try:
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            time.sleep(0.02)
        ended = time.time()
        if process.wait() != 0:
            raise RuntimeError(f"the downloader failed: {(run_dir / 'downloader.log').read_text()[-2000:]}")
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        state = run_dir / "images" / ".state" / "downloader.sqlite3"
        counts = status_counts(state)
        if counts["done"] != len(urls):
            raise RuntimeError(f"not every URL was downloaded: {counts}")
        with sqlite3.connect(state) as connection:
            (first,) = connection.execute("SELECT MIN(updated_at) FROM urls").fetchone()
    finally:
        stop(process)
        delete_topology(queue)
        shutil.rmtree(run_dir, ignore_errors=True)  # thousands of files: do not let runs pile up
    # The pending rows are written right after the URL file is read: the start of the work.
    started = datetime.fromisoformat(first).timestamp()
    cpu_s = sum(getattr(children_after, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime"))
    return {
        "images_per_s": len(urls) / (ended - started),
        "peak_rss_mb": peak / 2**20,
        "cpu_ms_per_image": 1000 * cpu_s / len(urls),
    }


def run(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench downloader", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 images, one round (about a minute)")
    parser.add_argument("--images", type=int, default=None, help="how many distinct JPEGs (default 10,000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per latency; medians are reported")
    args = parser.parse_args(argv)
    count = args.images or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    figures: dict[str, object] = {"images": count, "rounds": rounds, "concurrency": CONCURRENCY}
    with tempfile.TemporaryDirectory(prefix="bench-downloader-") as tmp:
        workdir = Path(tmp)
        names = _write_images(workdir / "files", count)
        for latency_ms in (0, 50):
            server = _ServerProcess(workdir / "files", latency_ms / 1000, workdir)
            try:
                urls = [f"{server.base}/{name}" for name in names]
                raw, rates, peaks, cpu = [], [], [], []
                for _ in range(rounds):
                    raw.append(asyncio.run(_raw_rate(urls)))
                    measured = _downloader_run(urls, workdir)
                    rates.append(measured["images_per_s"])
                    peaks.append(measured["peak_rss_mb"])
                    cpu.append(measured["cpu_ms_per_image"])
                    print(
                        f"latency {latency_ms} ms: raw {raw[-1]:.0f}/s, downloader {rates[-1]:.0f}/s, "
                        f"peak RSS {peaks[-1]:.0f} MB, {cpu[-1]:.2f} CPU ms/image",
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                server.stop()
            figures[f"images_per_s_{latency_ms}ms"] = round(statistics.median(rates), 1)
            figures[f"raw_images_per_s_{latency_ms}ms"] = round(statistics.median(raw), 1)
            figures[f"ratio_to_raw_{latency_ms}ms"] = round(statistics.median(rates) / statistics.median(raw), 3)
            figures[f"peak_rss_mb_{latency_ms}ms"] = round(max(peaks), 1)
            figures[f"cpu_ms_per_image_{latency_ms}ms"] = round(statistics.median(cpu), 2)
    figures["peak_rss_mb"] = max(figures["peak_rss_mb_0ms"], figures["peak_rss_mb_50ms"])  # type: ignore[type-var]
    figures["cpu_count"] = os.cpu_count()
    return figures


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "serve":
    serve(*sys.argv[2:])
