"""Photo library to searchable, real-size photos beside small ones: ``python -m bench library [--quick]``.

Both runs are the product's path with every hop real: the downloader scans a folder (PHOTOS_DIR) of
generated photos (:mod:`bench.library_photos`: 12 MP JPEGs of natural photographs with a camera's EXIF,
every third stored sideways, a few HEIC, some byte-for-byte copies) and reads, hashes and checks each,
publishes to the real RabbitMQ, the indexer has the embedding service (ViT-B-32, random weights: the
trained model's compute; its CPU runtime, ONNX Runtime) read each photo from the same folder, and writes
the points to an embedded store.
The clock runs from the downloader's start until every message it published is indexed; the store is
then checked: one point per distinct photo, holding every path of it. The same pipeline then runs on as
many 640x480 JPEGs, in the same run: ``ratio`` is photos/s over small images/s (goal: at least 0.85,
decoding must not set the pace).

``rescan_s``: a library of ``--rescan-files`` files (10,000) is indexed once by the downloader alone, then
the time of each following look at the unchanged folder (stat of every file and the comparison with the
state, no byte read) is read from ``dyimages_downloader_library_scan_seconds``; the mean of three looks.

``cpu_s_per_photo``, per distinct photo, on the photo run: ``scan``, ``read_hash`` (the scanner's own
CPU counters), ``check`` (the downloader's CPU less those two: the checks and its bookkeeping),
``decode`` (the embedding service's read, decode and preprocessing of a photo, timed in this process
with the service's own functions on every photo of the run; ``decode_cpu_s_by_format`` splits it by
file suffix, as a HEIC has no reduced decode), ``model`` (the embedding service's CPU less
that decode) and ``write`` (the indexer's CPU: messages, requests, the store). ``peak_rss_mb``: each service's
peak PSS (bench.pss, sampled every 2 s), its worker processes included. ``min_cosine_reduced_decode`` and
``p1_cosine_reduced_decode``: the cosine between a photo's vector from a full decode and from the reduced
(JPEG draft) decode, from :func:`bench.decode_cosine.cosines` on this run's JPEG photos.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np

from bench.figures import Limit
from bench.library_decode import decode_cpu_s, reduced_decode_cosines
from bench.library_photos import PHOTO_SIZE, SMALL_SIZE, LibrarySpec, make_library, make_stat_library
from bench.library_run import PipelineRun
from dyimages_common.library import state as library_state
from testkit.embedding import embedding_env
from testkit.procs import free_port, start_module, stop, wait_http_ok
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name

MODEL, PRETRAINED = "ViT-B-32", "none"
RUNTIME = "onnx"  # the embedding service's default on a CPU
STAGES = ("scan", "read_hash", "check", "decode", "model", "write")
SERVICES = ("downloader", "embedding", "indexer")
REQUIRED = (
    "photos",
    "photo_megapixels",
    "photos_per_s",
    "small_images_per_s",
    "ratio",
    "rescan_s",
    "rescan_files",
    "cpu_s_per_photo",
    "peak_rss_mb",
    "min_cosine_reduced_decode",
    "p1_cosine_reduced_decode",
)
LIMITS = {
    "ratio": Limit(
        at_least=0.0,
        at_most=1.5,
        why="12 MP photos do every step small images do, on more bytes: far above 1 the runs got different machines",
    ),
    "min_cosine_reduced_decode": Limit(at_least=-1.0, at_most=1.0 + 1e-6, why="a cosine"),
    "p1_cosine_reduced_decode": Limit(at_least=-1.0, at_most=1.0 + 1e-6, why="a cosine"),
}
SCANS = re.compile(r"^dyimages_downloader_library_scan_seconds_(sum|count) ([0-9.e+-]+)$", re.MULTILINE)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def _embedding_service(photos_dir: Path, workdir: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = embedding_env(workdir / "no-images", port)
    env.pop("MODEL_CONFIG")
    env.update(
        MODEL_NAME=MODEL,
        MODEL_PRETRAINED=PRETRAINED,
        EMBEDDING_RUNTIME=RUNTIME,
        PHOTOS_DIR=str(photos_dir),
        LOG_LEVEL="WARNING",
    )
    process = start_module("embedding", env=env, log_path=workdir / "embedding.log")
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http_ok(f"{url}/health", timeout=600, process=process)
        yield url, process.pid
    finally:
        stop(process)


def _pipeline(library: Path, workdir: Path, name: str, embedding: tuple[str, int]) -> PipelineRun:
    """One run from an empty index to every photo of ``library`` searchable (the services read
    ``workdir/photo-folder``, a symlink pointed at each library in turn, as the compose mount is one folder)."""
    queue = unique_queue_name(f"bench-library-{name}")
    run = PipelineRun(name, library, workdir / "photo-folder", workdir / name, queue, *embedding)
    try:
        return run.measure()
    finally:
        delete_topology(run.queue)


def _scan_histogram(metrics_url: str) -> tuple[float, float]:
    found = dict(SCANS.findall(httpx.get(metrics_url, timeout=5).text))
    return float(found.get("sum", "nan")), float(found.get("count", "nan"))


def _rescan(files: int, workdir: Path) -> float:
    """Mean seconds of a look at an unchanged library of ``files`` files, after it was indexed once."""
    library = make_stat_library(workdir / "stat-library", files)
    images_dir, queue, port = workdir / "rescan-state", unique_queue_name("bench-library-rescan"), free_port()
    images_dir.mkdir()
    env = {
        **rabbit_env(queue),
        "IMAGES_DIR": str(images_dir),
        "URLS_FILE": str(workdir / "no-urls.txt"),
        "PHOTOS_DIR": str(library),
        "METRICS_PORT": str(port),
        "DOWNLOADER_LIBRARY_POLL_S": "0.5",
        "DOWNLOADER_LIBRARY_SETTLE_S": "0",
        "LOG_LEVEL": "WARNING",
    }
    downloader = start_module("downloader", env=env, log_path=workdir / "rescan-downloader.log")
    state = library_state.library_state_path(images_dir / ".state" / "downloader.sqlite3")
    try:
        deadline = time.monotonic() + 1800
        while library_state.counts(state)["done"] < files:
            if downloader.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the rescan library was not indexed:\n{_tail(workdir / 'rescan-downloader.log')}")
            time.sleep(0.5)
        metrics_url = f"http://127.0.0.1:{port}/metrics"
        time.sleep(1.0)
        before = _scan_histogram(metrics_url)
        while _scan_histogram(metrics_url)[1] < before[1] + 3:
            if time.monotonic() > deadline:
                raise RuntimeError("fewer than three looks at the unchanged library")
            time.sleep(0.5)
        after = _scan_histogram(metrics_url)
    finally:
        stop(downloader, signal.SIGTERM)
        delete_topology(queue)
    return (after[0] - before[0]) / (after[1] - before[1])


def _tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def _per_photo(run: PipelineRun, decode_s: float) -> dict[str, float]:
    """CPU seconds per distinct photo by stage (see the module docstring); a stage not measured is NaN."""
    cpu, stages, n = run.cpu_s, run.scanner_cpu_s, run.distinct
    found = {
        "scan": stages.get("scan", math.nan),
        "read_hash": stages.get("read_hash", math.nan),
        "check": cpu.get("downloader", math.nan) - stages.get("scan", math.nan) - stages.get("read_hash", math.nan),
        "decode": decode_s * n,
        "model": cpu.get("embedding", math.nan) - decode_s * n,
        "write": cpu.get("indexer", math.nan),
    }
    return {stage: round(found.get(stage, math.nan) / n, 4) for stage in STAGES}


def run(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench library", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="16 photos (1 HEIC), one look at 10,000 files")
    parser.add_argument("--photos", type=int, help="distinct photos in each library (default 120)")
    parser.add_argument("--heic", type=int, help="of them HEIC (default 4; --quick 1)")
    parser.add_argument("--rescan-files", type=int, default=10_000, help="files in the rescanned library")
    args = parser.parse_args(argv)
    count = args.photos or (16 if args.quick else 120)
    heic = args.heic if args.heic is not None else (1 if args.quick else 4)
    copies = max(2, count // 10)
    require_rabbitmq()
    photos = make_library(LibrarySpec(count, PHOTO_SIZE, heic, copies=copies))
    small = make_library(LibrarySpec(count, SMALL_SIZE, 0, copies=copies))
    _log(f"libraries ready: {photos} and {small}")
    with tempfile.TemporaryDirectory(prefix="bench-library-") as tmp:
        workdir = Path(tmp)
        with _embedding_service(workdir / "photo-folder", workdir) as embedding:
            photo_run = _pipeline(photos, workdir, "photos", embedding)
            _log(f"photos: {photo_run.per_s:.2f}/s over {photo_run.seconds:.1f} s")
            small_run = _pipeline(small, workdir, "small", embedding)
            _log(f"small images: {small_run.per_s:.2f}/s over {small_run.seconds:.1f} s")
        decode_s, decode_by_format = decode_cpu_s(photos)
        cosines = np.asarray(reduced_decode_cosines(photos), dtype=np.float64)
        rescan_s = _rescan(args.rescan_files, workdir)
        _log(f"rescan of {args.rescan_files} unchanged files: {rescan_s:.3f} s")
    return {
        "photos": photo_run.distinct,
        "photo_files": photo_run.files,
        "photo_megapixels": round(PHOTO_SIZE[0] * PHOTO_SIZE[1] / 1e6, 1),
        "heic_photos": heic,
        "photos_per_s": round(photo_run.per_s, 3),
        "small_images_per_s": round(small_run.per_s, 3),
        "ratio": round(photo_run.per_s / small_run.per_s, 3),
        "rescan_s": round(rescan_s, 4),
        "rescan_files": args.rescan_files,
        "cpu_s_per_photo": _per_photo(photo_run, decode_s),
        "cpu_s_per_small_image": _per_photo(small_run, decode_cpu_s(small)[0]),
        "decode_cpu_s_by_format": decode_by_format,
        "peak_rss_mb": {service: photo_run.peak_pss_mib.get(service, math.nan) for service in SERVICES},
        "min_cosine_reduced_decode": round(float(cosines.min()), 6) if cosines.size else math.nan,
        "p1_cosine_reduced_decode": round(float(np.percentile(cosines, 1)), 6) if cosines.size else math.nan,
        "cosine_photos": int(cosines.size),
        "model": f"{MODEL}/{PRETRAINED}",
        "runtime": RUNTIME,
        "cpu_count": os.cpu_count(),
    }
