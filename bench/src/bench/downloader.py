"""Downloader throughput and memory: ``python -m bench downloader [--quick] [--images N] [--photos N]``.

A local HTTP server (in its own process, so its CPU is not the downloader's) serves N distinct
small JPEGs with 0 ms and then 50 ms of added latency per response, then (0 ms) realistic photos:
2-20 MB JPEGs (baseline and progressive, up to 24 megapixels) and PNGs, each URL distinct bytes.
For each set, plain aiohttp fetches every file once (the raw rate: what the network side allows),
then the real ``python -m downloader --once`` handles the same URLs end to end: fetch, decode
(JPEG at reduced scale), hash, write atomically, record in SQLite, publish to the real RabbitMQ
with confirms (a queue of its own, deleted afterwards), with its default
DOWNLOADER_MAX_INFLIGHT_BYTES. Its rate is N over the time from its start-up log line (just
before it reads the URL file; the interpreter's start-up and imports are reported apart, as
``startup_s``) to its exit with every message confirmed. Peak RSS is sampled from the downloader
process (psutil, every 20 ms).

Both clients use the same concurrency (64) against one local host, so the downloader's per-host
limit is set to it too (the single server stands in for many hosts).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import aiohttp
import numpy as np
import psutil
from PIL import Image

from downloader.settings import DownloaderSettings
from dyimages_common.urls.state import status_counts
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import start_module, stop
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name

CONCURRENCY = 64
# The clock starts when the downloader logs this, just before it reads the URL file (not at the first
# stored image, which would leave the reading and scheduling out); the log is polled every 20 ms.
STARTUP_LINE = b"downloader starting"
IMAGE_SIZE = (320, 240)
# Realistic photos: (size, detail (noise sigma), format, encoder options); about 2 to 20 MB each.
PHOTOS: tuple[tuple[tuple[int, int], float, str, dict[str, object]], ...] = (
    ((3000, 2000), 7, "JPEG", {"quality": 92}),
    ((4000, 3000), 6, "JPEG", {"quality": 92}),
    ((6000, 4000), 10, "JPEG", {"quality": 92}),
    ((6000, 4000), 30, "JPEG", {"quality": 96, "progressive": True}),
    ((2000, 1500), 3, "PNG", {"compress_level": 1}),
    ((3000, 2000), 4, "PNG", {"compress_level": 1}),
    ((4000, 3000), 3.6, "PNG", {"compress_level": 1}),
)


def _write_images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{i:05d}.jpg"
        (folder / name).write_bytes(jpeg(i, IMAGE_SIZE, quality=85))
        names.append(name)
    return names


def _photo(seed: int, size: tuple[int, int], detail: float) -> Image.Image:
    """A photo-like image: smooth colour fields (upscaled random colours) plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    coarse = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.normal(0, detail, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def _write_photos(folder: Path, count: int) -> tuple[list[str], list[int]]:
    """``count`` photos cycling through PHOTOS; each copy made distinct by a comment (JPEG COM
    segment, PNG tEXt chunk), so every URL is a new image to store, as with real photos."""
    folder.mkdir(parents=True, exist_ok=True)
    encoded = []
    for seed, (size, detail, fmt, options) in enumerate(PHOTOS):
        buffer = io.BytesIO()
        _photo(seed, size, detail).save(buffer, fmt, **options)
        encoded.append((fmt, buffer.getvalue()))
    names, sizes = [], []
    for i in range(count):
        fmt, data = encoded[i % len(encoded)]
        tag = f"bench photo {i}".encode()
        if fmt == "JPEG":
            data = data[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]
            name = f"photo-{i:04d}.jpg"
        else:
            chunk = b"tEXt" + b"Comment\x00" + tag
            text = (len(chunk) - 4).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
            data = data[:33] + text + data[33:]  # after the signature and IHDR
            name = f"photo-{i:04d}.png"
        (folder / name).write_bytes(data)
        names.append(name)
        sizes.append(len(data))
    return names, sizes


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
    figures: dict[str, object] = {"images": count, "rounds": rounds, "concurrency": CONCURRENCY}
    with tempfile.TemporaryDirectory(prefix="bench-downloader-") as tmp:
        workdir = Path(tmp)
        names = _write_images(workdir / "files", count)
        for latency_ms in (0, 50):
            _measure_set(figures, f"{latency_ms}ms", workdir / "files", names, latency_ms, rounds, workdir)
        shutil.rmtree(workdir / "files")
        if photos:
            photo_names, sizes = _write_photos(workdir / "photos", photos)
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
    figures["cpu_count"] = os.cpu_count()
    return figures


def _measure_set(
    figures: dict[str, object], label: str, folder: Path, names: list[str], latency_ms: int, rounds: int, workdir: Path
) -> None:
    """Raw aiohttp, then the downloader, ``rounds`` times over ``names``; medians into ``figures``."""
    server = _ServerProcess(folder, latency_ms / 1000, workdir)
    try:
        urls = [f"{server.base}/{name}" for name in names]
        raw, rates, peaks, cpu, startup = [], [], [], [], []
        for _ in range(rounds):
            raw.append(asyncio.run(_raw_rate(urls)))
            measured = _downloader_run(urls, workdir)
            rates.append(measured["images_per_s"])
            peaks.append(measured["peak_rss_mb"])
            cpu.append(measured["cpu_ms_per_image"])
            startup.append(measured["startup_s"])
            print(
                f"{label}: raw {raw[-1]:.0f}/s, downloader {rates[-1]:.1f}/s, "
                f"peak RSS {peaks[-1]:.0f} MB, {cpu[-1]:.2f} CPU ms/image, start-up {startup[-1]:.2f} s",
                file=sys.stderr,
                flush=True,
            )
    finally:
        server.stop()
    figures[f"images_per_s_{label}"] = round(statistics.median(rates), 1)
    figures[f"raw_images_per_s_{label}"] = round(statistics.median(raw), 1)
    figures[f"ratio_to_raw_{label}"] = round(statistics.median(rates) / statistics.median(raw), 3)
    figures[f"peak_rss_mb_{label}"] = round(max(peaks), 1)
    figures[f"cpu_ms_per_image_{label}"] = round(statistics.median(cpu), 2)
    figures[f"startup_s_{label}"] = round(statistics.median(startup), 2)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "serve":
    serve(*sys.argv[2:])
