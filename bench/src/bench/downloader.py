"""Downloader throughput and memory: ``python -m bench downloader [--quick] [--images N] [--photos N]``.

A local HTTP server (in its own process, so its CPU is not the downloader's) serves N distinct
small JPEGs with 0 ms and then 50 ms of added latency per response, then (0 ms) realistic photos:
2-20 MB JPEGs (baseline and progressive, up to 24 megapixels) and PNGs, each URL distinct bytes.
For each set, in rounds: the real ``python -m downloader --once`` handles every URL end to end
(fetch, check by a full decode, hash, write atomically, record in SQLite, publish to the real RabbitMQ
with confirms, a queue of its own deleted afterwards; its default byte budgets); its rate is N over
the time from its start-up log line (just before it reads the URL file; the interpreter's start-up
and imports are reported apart, as ``startup_s``) to its exit with every message confirmed. Beside
it, the reference (:mod:`bench.downloader_reference`, in a process of its own session, as the
downloader): the same work done plainly, with the downloader's own check, write and message, a strict
subset of the downloader's work; ``ratio_{set}`` = downloader ÷ reference images/s (median of the
rounds), above 1 in every round impossible (the run fails). ``fetch_only_images_per_s_{set}``:
plain aiohttp fetching every file (information: what the network side allows, a smaller job). Peak RSS is sampled from
the downloader process (one process; psutil, every 20 ms).

All clients use the same concurrency (64) against one local host, so the downloader's per-host
limit is set to it too (the single server stands in for many hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import psutil

from bench.downloader_files import ServerProcess, write_images, write_photos
from bench.figures import Limit
from downloader.settings import DownloaderSettings
from dyimages_common.urls.state import status_counts
from testkit.procs import start_module, stop
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name

CONCURRENCY = 64
# The clock starts when the downloader logs this, just before it reads the URL file (not at the first
# stored image, which would leave the reading and scheduling out); the log is polled every 20 ms.
STARTUP_LINE = b"downloader starting"
PER_SET = ("images_per_s", "reference_images_per_s", "ratio", "round_ratios", "fetch_only_images_per_s", "peak_rss_mb")
LIMITS = {
    f"ratio_{label}": Limit(
        at_most=1.0, why="the reference is a strict subset of the downloader's work", spread=f"round_ratios_{label}"
    )
    for label in ("0ms", "50ms", "photos")
}


def REQUIRED(figures: dict[str, object]) -> list[str]:
    labels = ["0ms", "50ms"] + (["photos"] if figures.get("photos") else [])
    return ["images", "rounds", *(f"{name}_{label}" for label in labels for name in PER_SET)]


def _reference_rate(urls: list[str], workdir: Path) -> float:
    """The reference over ``urls`` (its own process and session, a queue of its own); images/s."""
    queue = unique_queue_name("bench-downloader-reference")
    run_dir = Path(tempfile.mkdtemp(dir=workdir, prefix="reference-"))
    (run_dir / "urls.txt").write_text("\n".join(urls) + "\n")
    (run_dir / "images").mkdir()
    try:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.downloader_reference",
                str(run_dir / "urls.txt"),
                str(run_dir / "images"),
                queue,
            ],
            capture_output=True,
            text=True,
            check=False,
            start_new_session=True,
        )
        if result.returncode != 0:
            raise RuntimeError(f"the reference failed:\n{result.stderr[-3000:]}")
        return float(json.loads(result.stdout.strip().splitlines()[-1])["images_per_s"])
    finally:
        delete_topology(queue)
        shutil.rmtree(run_dir, ignore_errors=True)


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
        "LOG_LEVEL": "INFO",
    }
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    spawned = time.time()
    process = start_module("downloader", "--once", env=env, log_path=run_dir / "downloader.log")
    peak = 0
    started: float | None = None
    log = run_dir / "downloader.log"
    try:
        watched = psutil.Process(process.pid)
        while process.poll() is None:
            try:
                peak = max(peak, watched.memory_info().rss)
            except psutil.NoSuchProcess:
                break
            if started is None and STARTUP_LINE in log.read_bytes():
                started = time.time()  # within the 20 ms poll of the line being written
            time.sleep(0.02)
        ended = time.time()
        if process.wait() != 0:
            raise RuntimeError(f"the downloader failed: {(run_dir / 'downloader.log').read_text()[-2000:]}")
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
        state = run_dir / "images" / ".state" / "downloader.sqlite3"
        counts = status_counts(state)
        if counts["done"] != len(urls):
            raise RuntimeError(f"not every URL was downloaded: {counts}")
        if started is None:
            raise RuntimeError(f"no start-up line in {log}")
    finally:
        stop(process)
        delete_topology(queue)
        shutil.rmtree(run_dir, ignore_errors=True)  # thousands of files: do not let runs pile up
    cpu_s = sum(getattr(children_after, f) - getattr(children_before, f) for f in ("ru_utime", "ru_stime"))
    return {
        "images_per_s": len(urls) / (ended - started),
        "peak_rss_mb": peak / 2**20,
        "cpu_ms_per_image": 1000 * cpu_s / len(urls),
        "startup_s": started - spawned,
    }


def run(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench downloader", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 images, one round (about a minute)")
    parser.add_argument("--images", type=int, default=None, help="how many distinct JPEGs (default 10,000)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds per set; medians are reported")
    parser.add_argument("--photos", type=int, default=None, help="how many 2-20 MB photos (default 60; 0: none)")
    args = parser.parse_args(argv)
    count = args.images or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    photos = args.photos if args.photos is not None else (18 if args.quick else 60)
    figures: dict[str, object] = {"images": count, "rounds": rounds, "concurrency": CONCURRENCY, "runtime": "none"}
    with tempfile.TemporaryDirectory(prefix="bench-downloader-") as tmp:
        workdir = Path(tmp)
        names = write_images(workdir / "files", count)
        for latency_ms in (0, 50):
            _measure_set(figures, f"{latency_ms}ms", workdir / "files", names, latency_ms, rounds, workdir)
        shutil.rmtree(workdir / "files")
        if photos:
            photo_names, sizes = write_photos(workdir / "photos", photos)
            figures |= {
                "photos": photos,
                "photo_mb_min": round(min(sizes) / 1e6, 1),
                "photo_mb_max": round(max(sizes) / 1e6, 1),
                "photo_mb_total": round(sum(sizes) / 1e6, 1),
            }
            _measure_set(figures, "photos", workdir / "photos", photo_names, 0, rounds, workdir)
    figures["peak_rss_mb"] = max(value for key, value in figures.items() if key.startswith("peak_rss_mb_"))  # type: ignore[type-var]
    figures["max_inflight_bytes"] = DownloaderSettings.model_fields["downloader_max_inflight_bytes"].default
    figures["max_decode_bytes"] = DownloaderSettings.model_fields["downloader_max_decode_bytes"].default
    return figures


def _measure_set(
    figures: dict[str, object], label: str, folder: Path, names: list[str], latency_ms: int, rounds: int, workdir: Path
) -> None:
    """Fetch only, the reference and the downloader, ``rounds`` times over ``names`` (the reference and the
    downloader taking turns to go first); medians into ``figures``."""
    server = ServerProcess(folder, latency_ms / 1000, workdir)
    try:
        urls = [f"{server.base}/{name}" for name in names]
        raw, reference, rates, peaks, cpu, startup = [], [], [], [], [], []
        for number in range(rounds):
            raw.append(asyncio.run(_raw_rate(urls)))
            if number % 2 == 0:
                reference.append(_reference_rate(urls, workdir))
            measured = _downloader_run(urls, workdir)
            if number % 2 == 1:
                reference.append(_reference_rate(urls, workdir))
            rates.append(measured["images_per_s"])
            peaks.append(measured["peak_rss_mb"])
            cpu.append(measured["cpu_ms_per_image"])
            startup.append(measured["startup_s"])
            print(
                f"{label}: fetch only {raw[-1]:.0f}/s, reference {reference[-1]:.1f}/s, downloader {rates[-1]:.1f}/s, "
                f"peak RSS {peaks[-1]:.0f} MB, {cpu[-1]:.2f} CPU ms/image, start-up {startup[-1]:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.stop()
    round_ratios = [r / ref for r, ref in zip(rates, reference, strict=True)]
    figures[f"images_per_s_{label}"] = round(statistics.median(rates), 1)
    figures[f"reference_images_per_s_{label}"] = round(statistics.median(reference), 1)
    figures[f"ratio_{label}"] = round(statistics.median(round_ratios), 3)
    figures[f"round_ratios_{label}"] = [round(r, 3) for r in round_ratios]
    figures[f"fetch_only_images_per_s_{label}"] = round(statistics.median(raw), 1)
    figures[f"peak_rss_mb_{label}"] = round(max(peaks), 1)
    figures[f"cpu_ms_per_image_{label}"] = round(statistics.median(cpu), 2)
    figures[f"startup_s_{label}"] = round(statistics.median(startup), 2)
