"""End-to-end ingest beside the in-process reference: ``python -m bench ingest [--quick] [--images N]``.

End to end (the product's path, every hop real): a local HTTP server serves N distinct 640x480
JPEGs; ``python -m downloader --once`` reads the URL file, fetches, checks and stores every image
and publishes one message each to the real RabbitMQ (a queue of this run's own); ``python -m
indexer`` consumes them in batches, asks the real embedding service (LitServe + OpenCLIP
ViT-B-32, random weights: the compute of the trained model) for vectors over HTTP and writes them
to an embedded Qdrant folder. The clock starts when the downloader starts and stops when the
indexer has written (and acknowledged) the N-th image, read from its /metrics; the run then
checks the folder holds exactly N points.

Reference (:mod:`bench.ingest_reference`, one process of its own session, no network, no queue):
each file decoded as the service decodes it, the service's model on the service's runtime
(``--runtime``, default ONNX, the CPU default; the same model and decode threads), batches of the
indexer's size (``INDEXER_BATCH_SIZE``'s default unless ``--batch``), each written with the indexer's
own write while the next is embedded. It is a strict subset of the pipeline's work, so ``ratio``
(end to end ÷ reference images/s) above 1 in every round is impossible and fails the run.

Rounds alternate reference and end-to-end so both see about the same load on a shared machine;
``ratio`` is the median over rounds of end-to-end over the reference run beside it. On a busy
machine the share of CPU each side gets varies, so the CPU seconds per image of both sides are
reported too: a measure of the pipeline's overhead that does not depend on that share. End to
end it counts every process the work runs in: the downloader, the indexer, the embedding service
(with its workers), the image server (a process of its own here) and RabbitMQ (``beam.smp``; a
broker other work also uses is counted whole, so on a shared machine this part is an upper bound).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.downloader_files import ServerProcess
from bench.figures import Limit
from bench.ingest_pipeline import e2e_round
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import sha256_hex
from embedding.api import thread_counts
from embedding.settings import EmbeddingSettings
from indexer.settings import IndexerSettings
from testkit.embedding import embedding_env
from testkit.images import jpeg
from testkit.procs import free_port, start_module, stop, wait_http_ok
from testkit.rabbit import require_rabbitmq

MODEL = "ViT-B-32"
INDEXER_BATCH = int(IndexerSettings.model_fields["indexer_batch_size"].default)  # the indexer's default batch
PRETRAINED = "none"
IMAGE_SIZE = (640, 480)
# The embedding service's default (see embedding/__main__.py); the reference runs with the same.
OMP_WAIT_POLICY = os.environ.get("OMP_WAIT_POLICY", "PASSIVE")
REQUIRED = (
    "images",
    "rounds",
    "e2e_images_per_s",
    "reference_images_per_s",
    "ratio",
    "round_ratios",
    "e2e_rounds",
    "reference_rounds",
    "e2e_cpu_s_per_image",
    "reference_cpu_s_per_image",
    "e2e_cpu_s_by_process",
)
LIMITS = {
    "ratio": Limit(at_most=1.0, why="the reference is a strict subset of the pipeline's work", spread="round_ratios")
}


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _reference_round(files_dir: Path, args: argparse.Namespace, env: dict[str, str], workdir: Path) -> dict[str, float]:
    qdrant_path = Path(tempfile.mkdtemp(dir=workdir, prefix="reference-store-"))
    command = [sys.executable, "-m", "bench.ingest_reference", str(files_dir), str(qdrant_path), args.runtime]
    result = subprocess.run(
        [*command, str(args.threads), str(args.decode_threads), str(args.batch), json.dumps(env)],
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
    parser.add_argument("--threads", type=int, default=0, help="model threads, both sides (the service's)")
    parser.add_argument("--decode-threads", type=int, default=0, help="decode threads, both sides (the service's)")
    parser.add_argument("--runtime", choices=("onnx", "torch"), default="onnx", help="EMBEDDING_RUNTIME, both sides")
    parser.add_argument(
        "--batch",
        type=int,
        default=INDEXER_BATCH,
        help=f"images per model batch and write, both sides (default {INDEXER_BATCH})",
    )
    args = parser.parse_args(argv)
    settings = EmbeddingSettings(embedding_torch_threads=args.threads, embedding_decode_threads=args.decode_threads)
    args.threads, args.decode_threads = thread_counts(settings, "cpu")  # what the service would run
    count = args.images or (200 if args.quick else 1_000)
    rounds = args.rounds or (1 if args.quick else 3)
    require_rabbitmq()
    rounds_measured: list[tuple[dict[str, float], dict[str, float]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as tmp:
        workdir = Path(tmp)
        images = _write_images(workdir / "files", count)
        server = ServerProcess(workdir / "files", 0.0, workdir)  # a process of its own: its CPU is counted
        urls = [f"{server.base}{path}" for path in images]
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
            EMBEDDING_DECODE_THREADS=str(args.decode_threads),
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
                ref = _reference_round(workdir / "files", args, env, workdir)
                e2e = e2e_round(urls, expected, images_dir, embedding, url, args.batch, workdir, server.pid)
                rounds_measured.append((e2e, ref))
                _log(
                    f"round {round_number}: end-to-end {e2e['images_per_s']:.2f} images/s, "
                    f"reference {ref['images_per_s']:.2f} images/s; CPU s per image: end-to-end "
                    f"{_e2e_cpu(e2e) / count:.3f}, reference {ref['cpu_s'] / count:.3f}"
                )
        finally:
            stop(embedding)
            server.stop()
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
        "round_ratios": [round(e / r, 3) for e, r in zip(e2e_rates, reference_rates, strict=True)],
        "rounds": len(rounds),
        "e2e_rounds": [round(rate, 2) for rate in e2e_rates],
        "reference_rounds": [round(rate, 2) for rate in reference_rates],
        # CPU time per image (every thread of every process the work runs in, the broker's and the
        # image server's included): independent of how much of a shared machine each side got.
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
        "decode_threads": args.decode_threads,
        "batch": args.batch,
        "image_size": "x".join(map(str, IMAGE_SIZE)),
    }
