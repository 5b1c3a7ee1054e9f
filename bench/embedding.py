"""Embedding throughput and latency: raw model, in-process reference pipeline, and the service.

``python -m bench embedding [--quick] [--threads N] [--batch B] [--clients C] [--images N]``

All three use the same model (ViT-B-32 with random weights: the same compute as trained weights)
and the same number of torch threads:

* raw model: ``encode_image`` on already preprocessed tensors, batches of B (images/s);
* reference: OpenCLIP's pipeline in this process: open each JPEG, ``preprocess``, stack B,
  ``encode_image``, normalise (images/s);
* service: ``python -m embedding`` over HTTP, C concurrent clients each sending requests of B
  stored paths, as the indexer does (images/s).

Reference and service alternate in rounds on the same images, so both see the same machine load;
figures are medians over rounds. Text: single-query latency, alternating the raw text encoder
(pre-tokenized) and the service (one text per request), p50 of each.

The in-process side runs in a child process that starts its own session, as the service does
(testkit starts it with ``start_new_session``): with the kernel's autogroup scheduling, CPU time is
shared between sessions, so on a busy machine a side in the caller's session would get a
different share than the service and the ratio would measure the scheduler, not the code.
"""

from __future__ import annotations

import argparse
import io
import multiprocessing
import os
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import open_clip
import torch
from PIL import Image
from skimage import data as photos

from dyimages_common.embedding_api import EmbeddingClient
from dyimages_common.storage import sha256_hex, stored_path, write_atomic
from testkit.embedding import run_embedding_service

MODEL = "ViT-B-32"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
QUERIES = ["a red bicycle leaning on a wall", "a cat on a sofa", "mountains at sunset", "a cup of coffee"]


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench embedding")
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds (a few minutes)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="torch threads, all sides")
    parser.add_argument("--batch", type=int, default=8, help="images per model batch and per request")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--images", type=int, default=0, help="images per round (default 48, quick 16)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 3, quick 2)")
    parser.add_argument("--queries", type=int, default=0, help="text queries (default 40, quick 15)")
    args = parser.parse_args(argv)
    args.images = args.images or (16 if args.quick else 48)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.queries = args.queries or (15 if args.quick else 40)
    return args


def make_photos(images_dir: Path, count: int) -> list[str]:
    """``count`` distinct 640x480 JPEGs cut from scikit-image's photographs, stored as the downloader does."""
    rng = np.random.default_rng(0)
    paths = []
    for index in range(count):
        source = Image.fromarray(getattr(photos, PHOTOS[index % len(PHOTOS)])()).convert("RGB")
        scale = rng.uniform(1.3, 1.8)
        big = source.resize((int(640 * scale), int(480 * scale)), Image.Resampling.BICUBIC)
        left, top = int(rng.integers(0, big.width - 640)), int(rng.integers(0, big.height - 480))
        buffer = io.BytesIO()
        big.crop((left, top, left + 640, top + 480)).save(buffer, format="JPEG", quality=90)
        data = buffer.getvalue()
        path = stored_path(sha256_hex(data), "jpg")
        write_atomic(images_dir, path, data)
        paths.append(path)
    return paths


def _chunks(items: list[str], size: int) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class InProcess:
    def __init__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(MODEL)

    @torch.inference_mode()
    def raw_images_per_s(self, batch: int, images: int) -> float:
        pixels = torch.randn(batch, 3, 224, 224)
        self.model.encode_image(pixels)  # warm-up
        started = time.perf_counter()
        for _ in range(max(1, images // batch)):
            self.model.encode_image(pixels)
        return max(1, images // batch) * batch / (time.perf_counter() - started)

    @torch.inference_mode()
    def reference_images_per_s(self, images_dir: Path, paths: list[str], batch: int) -> float:
        started = time.perf_counter()
        for chunk in _chunks(paths, batch):
            pixels = torch.stack([self.preprocess(Image.open(images_dir / path)) for path in chunk])
            features = self.model.encode_image(pixels)
            features / features.norm(dim=-1, keepdim=True)
        return len(paths) / (time.perf_counter() - started)

    @torch.inference_mode()
    def text_ms(self, query: str) -> float:
        """Latency of the raw text encoder for one query (tokenized before the clock starts)."""
        tokens = self.tokenizer([query])
        started = time.perf_counter()
        features = self.model.encode_text(tokens)
        features / features.norm(dim=-1, keepdim=True)
        return (time.perf_counter() - started) * 1000


def _in_process_worker(conn: Connection, threads: int) -> None:
    os.setsid()  # its own session and scheduling group, like the service (see the module docstring)
    local = InProcess(threads)
    while (call := conn.recv()) is not None:
        name, args = call
        conn.send(getattr(local, name)(*args))


class InProcessWorker:
    """:class:`InProcess` in a child process; calls are forwarded over a pipe and answered in turn."""

    def __init__(self, threads: int) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(target=_in_process_worker, args=(child, threads), daemon=True)
        self._process.start()

    def call(self, name: str, *args: object) -> float:
        self._conn.send((name, args))
        return float(self._conn.recv())

    def close(self) -> None:
        self._conn.send(None)
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()


def service_images_per_s(client: EmbeddingClient, paths: list[str], batch: int, clients: int) -> float:
    requests = _chunks(paths, batch)
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client.embed_image_paths, requests))
    elapsed = time.perf_counter() - started
    if any(error for result in results for error in result.errors):
        raise RuntimeError(f"the service failed images: {[r.errors for r in results]}")
    return len(paths) / elapsed


def service_text_ms(client: EmbeddingClient, query: str) -> float:
    started = time.perf_counter()
    client.embed_texts([query])
    return (time.perf_counter() - started) * 1000


def run(argv: list[str]) -> dict:
    args = _parse(argv)
    # The service waits passively in OpenMP unless told otherwise (embedding/__main__.py); the
    # in-process side gets the same policy, inherited by its worker process.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        root = Path(tmp)
        images_dir = root / "images"
        paths = make_photos(images_dir, args.images)
        local = InProcessWorker(args.threads)
        try:
            env = {
                "MODEL_NAME": MODEL,
                "MODEL_PRETRAINED": "none",
                "EMBEDDING_TORCH_THREADS": str(args.threads),
                "EMBEDDING_MAX_BATCH_SIZE": str(args.batch),
                "LOG_LEVEL": "WARNING",
            }
            with (
                run_embedding_service(images_dir, root, **env) as service,
                EmbeddingClient(service.url, timeout=600) as client,
            ):
                service_images_per_s(client, paths[: args.batch], args.batch, 1)  # warm-up
                client.embed_texts(["warm-up"])
                raw, reference, served = [], [], []
                for round_ in range(args.rounds):
                    raw.append(local.call("raw_images_per_s", args.batch, args.images))
                    reference.append(local.call("reference_images_per_s", images_dir, paths, args.batch))
                    served.append(service_images_per_s(client, paths, args.batch, args.clients))
                    print(
                        f"round {round_ + 1}: raw {raw[-1]:.2f}, reference {reference[-1]:.2f}, "
                        f"service {served[-1]:.2f} images/s",
                        flush=True,
                    )
                local.call("text_ms", QUERIES[0])
                raw_text, served_text = [], []
                for index in range(args.queries):
                    raw_text.append(local.call("text_ms", QUERIES[index % len(QUERIES)]))
                    served_text.append(service_text_ms(client, QUERIES[index % len(QUERIES)]))
        finally:
            local.close()
    reference_rate = statistics.median(reference)
    service_rate = statistics.median(served)
    return {
        "benchmark": "embedding",
        "model": f"{MODEL} (random weights)",
        "device": "cpu",
        "threads": args.threads,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "batch": args.batch,
        "clients": args.clients,
        "images_per_round": args.images,
        "rounds": args.rounds,
        "raw_model_images_per_s": round(statistics.median(raw), 2),
        "reference_images_per_s": round(reference_rate, 2),
        "service_images_per_s": round(service_rate, 2),
        "ratio": round(service_rate / reference_rate, 3),
        "round_ratios": [round(s / r, 3) for s, r in zip(served, reference, strict=True)],
        "text_p50_ms": round(statistics.median(served_text), 1),
        "raw_text_p50_ms": round(statistics.median(raw_text), 1),
        "text_ratio": round(statistics.median(served_text) / statistics.median(raw_text), 3),
    }
