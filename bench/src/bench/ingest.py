"""End-to-end ingest beside the in-process reference: ``python -m bench ingest [--quick] [--images N]``.

End to end (the product's path, every hop real): a local HTTP server serves N distinct 640x480
JPEGs; ``python -m downloader --once`` reads the URL file, fetches, checks and stores every image
and publishes one message each to the real RabbitMQ (a queue of this run's own); ``python -m
indexer`` consumes them in batches, asks the real embedding service (LitServe + OpenCLIP
ViT-B-32, random weights: the compute of the trained model) for vectors over HTTP and writes them
to an embedded Qdrant folder. The clock starts when the downloader starts and stops when the
indexer has written (and acknowledged) the N-th image, read from its /metrics; the run then
checks the folder holds exactly N points.

Reference (one process, no network, no queue): read each file, decode, preprocess (OpenCLIP's own
transform), run the same model with the same torch thread count and the same batch size as the
indexer (``INDEXER_BATCH_SIZE``'s default unless ``--batch``), a thread pool decoding the next batch
while the model runs (as the service does), with the service's OpenMP wait policy; and write each
batch to an embedded Qdrant folder with the indexer's own write (``ImageStore.write`` through the store
seam: the same payloads and conditional upserts, into a collection made by ``ensure_serving``) on one
writer thread, so that a batch is written while the next one is embedded, as the indexer's two
batches in flight do. The service runs the reference's runtime (``--runtime``, default torch; its
CPU default, ONNX Runtime, is faster than the torch reference). The reference once wrote between
model batches, point by point committed to the embedded store, which slowed it and flattered the
pipeline.

Rounds alternate reference and end-to-end so both see about the same load on a shared machine;
``ratio`` is the median over rounds of end-to-end over the reference run beside it. On a busy
machine the share of CPU each side gets varies, so the CPU seconds per image of both sides are
reported too: a measure of the pipeline's overhead that does not depend on that share.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import sha256_hex
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.factory import open_store
from indexer.settings import IndexerSettings
from testkit.embedding import embedding_env
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import free_port, start_module, stop, wait_http_ok
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name

MODEL = "ViT-B-32"
INDEXER_BATCH = int(IndexerSettings.model_fields["indexer_batch_size"].default)  # the indexer's default batch
PRETRAINED = "none"
IMAGE_SIZE = (640, 480)
# The embedding service's default (see embedding/__main__.py); the reference runs with the same.
OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
INDEXED = re.compile(r"^dyimages_indexer_indexed_total ([0-9.e+]+)$", re.MULTILINE)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the reference: one process --------------------------------------------------------------------


def reference(files_dir: str, threads: str, batch: str, qdrant_path: str) -> None:
    """Child process: decode + preprocess + model + upsert every file; print its rate as JSON.

    As good as one process does it simply: a pool of ``threads`` decodes the next batch while the
    model (``threads`` torch threads) runs on this one, as the service's decode pool does.
    """
    from concurrent.futures import Future, ThreadPoolExecutor
    from datetime import UTC, datetime

    import numpy as np
    import open_clip
    import torch
    from PIL import Image

    from dyimages_common.images.storage import stored_path
    from dyimages_common.messaging.messages import ImageDownloaded
    from dyimages_common.store.builds import ensure_serving
    from dyimages_common.store.factory import open_store
    from dyimages_common.store.types import ImageVector

    torch.set_num_threads(int(threads))
    model, _, preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
    model.eval()
    client = open_store(load_settings(QdrantSettings, qdrant_path=Path(qdrant_path)))
    ensure_serving(client, dim=512, model=MODEL, pretrained=PRETRAINED)
    collection = client.serving() or "images"
    files = sorted(Path(files_dir).iterdir())
    chunks = [files[start : start + int(batch)] for start in range(0, len(files), int(batch))]

    def decode(path: Path) -> tuple[ImageDownloaded, torch.Tensor]:
        data = path.read_bytes()
        sha = sha256_hex(data)
        event = ImageDownloaded(
            sha256=sha,
            path=stored_path(sha, "jpg"),
            url=f"http://127.0.0.1/{path.name}",
            content_type="image/jpeg",
            width=IMAGE_SIZE[0],
            height=IMAGE_SIZE[1],
            bytes=len(data),
            downloaded_at=datetime.now(UTC),
        )
        return event, preprocess(Image.open(io.BytesIO(data)).convert("RGB"))

    def embed(decoded: list[Future[tuple[ImageDownloaded, torch.Tensor]]]) -> list[ImageVector]:
        events, pixels = zip(*(future.result() for future in decoded), strict=True)
        with torch.inference_mode():
            features = model.encode_image(torch.stack(pixels))
        vectors = (features / features.norm(dim=-1, keepdim=True)).numpy().astype(np.float32)
        return [ImageVector(e.sha256, vector, [e]) for e, vector in zip(events, vectors, strict=True)]

    with ThreadPoolExecutor(int(threads)) as pool, ThreadPoolExecutor(1) as writer:
        embed([pool.submit(decode, path) for path in files[:2]])  # warm-up, as the service had
        started, cpu_started = time.perf_counter(), time.process_time()
        upcoming = [pool.submit(decode, path) for path in chunks[0]]
        writing: Future[int] | None = None
        for number in range(len(chunks)):
            current = upcoming
            if number + 1 < len(chunks):
                upcoming = [pool.submit(decode, path) for path in chunks[number + 1]]
            images = embed(current)
            if writing is not None:  # one batch written while the next is embedded, no more
                writing.result()
            writing = writer.submit(client.write, collection, images, model=MODEL)
        if writing is not None:
            writing.result()
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
    assert client.count() == len(files)
    client.close()
    print(json.dumps({"images_per_s": len(files) / elapsed, "seconds": elapsed, "cpu_s": cpu}))


def _reference_round(files_dir: Path, threads: int, batch: int, workdir: Path) -> dict[str, float]:
    qdrant_path = Path(tempfile.mkdtemp(dir=workdir, prefix="reference-qdrant-"))
    result = subprocess.run(
        [sys.executable, "-m", "bench.ingest", "reference", str(files_dir), str(threads), str(batch), str(qdrant_path)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_WAIT_POLICY": OMP_WAIT_POLICY},
        start_new_session=True,  # its own session and scheduling group, as each service of the pipeline has
    )
    shutil.rmtree(qdrant_path, ignore_errors=True)
    if result.returncode != 0:
        raise RuntimeError(f"the reference failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


# -- end to end: real processes --------------------------------------------------------------------


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

    def watch(self, name: str, pid: int) -> None:
        self._processes[name] = psutil.Process(pid)
        self._start[name] = self._seconds(self._processes[name])
        self.used[name] = 0.0

    def sample(self) -> None:
        for name, process in self._processes.items():
            with contextlib.suppress(psutil.Error):
                if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                    self.used[name] = max(self.used[name], self._seconds(process) - self._start[name])


def _e2e_round(
    urls: list[str],
    expected: set[str],
    images_dir: Path,
    embedding: subprocess.Popen[bytes],
    embedding_url: str,
    batch: int,
    workdir: Path,
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


def _write_images(folder: Path, count: int) -> dict[str, bytes]:
    folder.mkdir(parents=True)
    images = {}
    for index in range(count):
        data = jpeg(50_000 + index, IMAGE_SIZE, quality=85)
        (folder / f"{index:05d}.jpg").write_bytes(data)
        images[f"/{index:05d}.jpg"] = data
    return images


def run(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench ingest", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="200 images, one round")
    parser.add_argument("--images", type=int, help="distinct images (default 1,000)")
    parser.add_argument("--rounds", type=int, help="rounds of each (default 3; --quick 1)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads, both sides")
    parser.add_argument(
        "--runtime",
        choices=("torch", "onnx"),
        default="torch",
        help="the embedding service's EMBEDDING_RUNTIME (default torch, the reference's own, so the ratio "
        "compares like with like; onnx is the service's CPU default)",
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=INDEXER_BATCH,
        help=f"images per model batch and write, both sides (default {INDEXER_BATCH})",
    )
    args = parser.parse_args(argv)
    count = args.images or (200 if args.quick else 1_000)
    rounds = args.rounds or (1 if args.quick else 3)
    require_rabbitmq()
    rounds_measured: list[tuple[dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp, ImageServer() as server:
        workdir = Path(tmp)
        images = _write_images(workdir / "files", count)
        for path, data in images.items():
            server.add(path, Route(body=data))
        urls = [server.url(path) for path in images]
        expected = {sha256_hex(data) for data in images.values()}
        images_dir = workdir / "images"
        images_dir.mkdir()
        port = free_port()
        env = embedding_env(images_dir, port)
        env.pop("MODEL_CONFIG")
        env.update(
            MODEL_NAME=MODEL,
            MODEL_PRETRAINED=PRETRAINED,
            EMBEDDING_TORCH_THREADS=str(args.threads),
            EMBEDDING_MAX_BATCH_SIZE=str(args.batch),
            OMP_WAIT_POLICY=OMP_WAIT_POLICY,
            EMBEDDING_RUNTIME=args.runtime,
            LOG_LEVEL="WARNING",
        )
        embedding = start_module("embedding", env=env, log_path=workdir / "embedding.log")
        try:
            url = f"http://127.0.0.1:{port}"
            wait_http_ok(f"{url}/health", timeout=300, process=embedding)
            with EmbeddingClient(url) as client:  # warm-up, as the reference does
                client.embed_image_bytes(images[next(iter(images))])
            for round_number in range(1, rounds + 1):
                ref = _reference_round(workdir / "files", args.threads, args.batch, workdir)
                e2e = _e2e_round(urls, expected, images_dir, embedding, url, args.batch, workdir)
                rounds_measured.append((e2e, ref))
                _log(
                    f"round {round_number}: end-to-end {e2e['images_per_s']:.2f} images/s, "
                    f"reference {ref['images_per_s']:.2f} images/s; CPU s per image: end-to-end "
                    f"{_e2e_cpu(e2e) / count:.3f}, reference {ref['cpu_s'] / count:.3f}"
                )
        finally:
            stop(embedding)
    return _figures(rounds_measured, count, args)


def _e2e_cpu(measured: dict[str, float]) -> float:
    return sum(value for name, value in measured.items() if name.startswith("cpu_s_"))


def _figures(
    rounds: list[tuple[dict[str, float], dict[str, float]]], count: int, args: argparse.Namespace
) -> dict[str, object]:
    """Medians over rounds; the ratios pair each end-to-end run with the reference run beside it."""
    e2e_rates = [e2e["images_per_s"] for e2e, _ in rounds]
    reference_rates = [ref["images_per_s"] for _, ref in rounds]
    return {
        "images": count,
        "e2e_images_per_s": round(statistics.median(e2e_rates), 2),
        "reference_images_per_s": round(statistics.median(reference_rates), 2),
        "ratio": round(statistics.median(e / r for e, r in zip(e2e_rates, reference_rates, strict=True)), 3),
        "rounds": len(rounds),
        "e2e_rounds": [round(rate, 2) for rate in e2e_rates],
        "reference_rounds": [round(rate, 2) for rate in reference_rates],
        # CPU time per image (all threads; RabbitMQ's own not counted): independent of how much of
        # a shared machine each side happened to get.
        "e2e_cpu_s_per_image": round(statistics.median(_e2e_cpu(e2e) / count for e2e, _ in rounds), 4),
        "reference_cpu_s_per_image": round(statistics.median(ref["cpu_s"] / count for _, ref in rounds), 4),
        "e2e_cpu_s_by_process": {
            name[6:]: round(statistics.median(e2e[name] for e2e, _ in rounds), 1)
            for name in rounds[0][0]
            if name.startswith("cpu_s_")
        },
        "model": f"{MODEL}/{PRETRAINED}",
        "threads": args.threads,
        "omp_wait_policy": OMP_WAIT_POLICY,
        "runtime": args.runtime,
        "batch": args.batch,
        "image_size": "x".join(map(str, IMAGE_SIZE)),
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "reference":
    reference(*sys.argv[2:])
