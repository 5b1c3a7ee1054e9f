"""Embedding throughput and latency: raw model, in-process reference, and the service on both runtimes.

``python -m bench embedding [--quick] [--threads N] [--batch B] [--clients C] [--images N] [--device cpu|cuda]``

All sides use the same model (ViT-B-32 with random weights: the same compute as trained weights),
the same device and the same number of model threads:

* raw model: ``encode_image`` on already preprocessed tensors, batches of B (images/s);
* reference: OpenCLIP's pipeline in PyTorch in a child process: open each JPEG, ``preprocess``,
  stack B, ``encode_image``, normalise (images/s);
* the service, twice: ``python -m embedding`` with ``EMBEDDING_RUNTIME=torch`` and with
  ``EMBEDDING_RUNTIME=onnx``, over HTTP, C concurrent clients each sending requests of B stored
  paths, as the indexer does (images/s).

Reference and the two services alternate in rounds on the same images, so all see the same machine
load; figures are medians over rounds. Text: single-query latency, alternating the raw text encoder
(pre-tokenized) and each service (one text per request), p50 of each. Then, per service: the
first query after it sat idle for ``--idle-s`` seconds, the first query after a restart once
/health answers, and the peak RSS of its processes. The ONNX bundle is exported before any service
starts (``python -m embedding export``, a no-op once cached), so those are serving figures.

``--device cuda`` moves every side to the GPU (the service with ``DEVICE=cuda``) and reports the
device each side really ran on; without a CUDA device it refuses. The ONNX side runs on CUDA only
when onnxruntime has its CUDA provider (``onnxruntime-gpu``); otherwise its fields are null.

The in-process side runs in a child process that starts its own session, as the service does
(testkit starts it with ``start_new_session``): with the kernel's autogroup scheduling, CPU time is
shared between sessions, so on a busy machine a side in the caller's session would get a
different share than the service and the ratio would measure the scheduler, not the code.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path

import numpy as np
import open_clip
import psutil
import torch
from PIL import Image
from skimage import data as photos

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from embedding.onnx_runtime import has_cuda_provider
from testkit.embedding import EmbeddingService, embedding_env, run_embedding_service

MODEL = "ViT-B-32"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
QUERIES = ["a red bicycle leaning on a wall", "a cat on a sofa", "mountains at sunset", "a cup of coffee"]
RUNTIMES = ("torch", "onnx")


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench embedding")
    parser.add_argument("--quick", action="store_true", help="fewer images and rounds (a few minutes)")
    parser.add_argument("--threads", type=int, default=len(os.sched_getaffinity(0)), help="model threads, all sides")
    parser.add_argument("--batch", type=int, default=8, help="images per model batch and per request")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--images", type=int, default=0, help="images per round (default 48, quick 16)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 3, quick 2)")
    parser.add_argument("--queries", type=int, default=0, help="text queries (default 40, quick 15)")
    parser.add_argument("--idle-s", type=float, default=-1, help="idle time before the 'after idle' query")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=os.environ.get("DEVICE", "cpu") or "cpu")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="", help="default: fp32 CPU, fp16 CUDA")
    parser.add_argument("--skip-restart", action="store_true", help="no restart figures (saves two service starts)")
    parser.add_argument("--onnx-optimization", default="all", help="EMBEDDING_ONNX_OPTIMIZATION of the onnx side")
    args = parser.parse_args(argv)
    args.images = args.images or (16 if args.quick else 48)
    args.rounds = args.rounds or (2 if args.quick else 3)
    args.queries = args.queries or (15 if args.quick else 40)
    args.idle_s = args.idle_s if args.idle_s >= 0 else (20.0 if args.quick else 180.0)
    args.precision = args.precision or ("fp16" if args.device == "cuda" else "fp32")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench embedding: --device cuda (or DEVICE=cuda) but torch sees no CUDA device")
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
    def __init__(self, threads: int, device: str, precision: str) -> None:
        torch.set_num_threads(threads)
        self.device = torch.device(device)
        self.dtype = torch.float16 if precision == "fp16" else torch.float32
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            MODEL, pretrained=None, precision=precision, device=device
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(MODEL)

    def device_type(self) -> str:
        return next(self.model.parameters()).device.type

    def _sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize()

    @torch.inference_mode()
    def raw_images_per_s(self, batch: int, images: int) -> float:
        pixels = torch.randn(batch, 3, 224, 224, device=self.device, dtype=self.dtype)
        self.model.encode_image(pixels)  # warm-up
        self._sync()
        started = time.perf_counter()
        for _ in range(max(1, images // batch)):
            self.model.encode_image(pixels)
        self._sync()
        return max(1, images // batch) * batch / (time.perf_counter() - started)

    @torch.inference_mode()
    def reference_images_per_s(self, images_dir: Path, paths: list[str], batch: int) -> float:
        started = time.perf_counter()
        for chunk in _chunks(paths, batch):
            pixels = torch.stack([self.preprocess(Image.open(images_dir / path)) for path in chunk])
            features = self.model.encode_image(pixels.to(self.device, self.dtype)).float()
            (features / features.norm(dim=-1, keepdim=True)).cpu()
        return len(paths) / (time.perf_counter() - started)

    @torch.inference_mode()
    def text_ms(self, query: str) -> float:
        """Latency of the raw text encoder for one query (tokenized before the clock starts)."""
        tokens = self.tokenizer([query])
        started = time.perf_counter()
        features = self.model.encode_text(tokens.to(self.device)).float()
        (features / features.norm(dim=-1, keepdim=True)).cpu()
        return (time.perf_counter() - started) * 1000


def _in_process_worker(conn: Connection, threads: int, device: str, precision: str) -> None:
    os.setsid()  # its own session and scheduling group, like the service (see the module docstring)
    local = InProcess(threads, device, precision)
    while (call := conn.recv()) is not None:
        name, args = call
        conn.send(getattr(local, name)(*args))


class InProcessWorker:
    """:class:`InProcess` in a child process; calls are forwarded over a pipe and answered in turn."""

    def __init__(self, threads: int, device: str, precision: str) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_in_process_worker, args=(child, threads, device, precision), daemon=True
        )
        self._process.start()

    def call(self, name: str, *args: object) -> object:
        self._conn.send((name, args))
        return self._conn.recv()

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


def tree_peak_rss_mib(pid: int) -> float:
    """Sum of the peak RSS (VmHWM) of a process and all its descendants (the service's workers)."""
    total_kib = 0
    with contextlib.suppress(psutil.Error):
        processes = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
        for process in processes:
            with contextlib.suppress(OSError), open(f"/proc/{process.pid}/status") as status:
                total_kib += next((int(line.split()[1]) for line in status if line.startswith("VmHWM:")), 0)
    return round(total_kib / 1024, 1)


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 2) if values else None


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a is not None and b else None


def run(argv: list[str]) -> dict:
    args = _parse(argv)
    # The service waits passively in OpenMP (and ONNX Runtime's pool sleeps) unless told otherwise
    # (embedding/__main__.py); the in-process side gets the same policy, inherited by its worker.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    runtimes = [rt for rt in RUNTIMES if rt == "torch" or args.device == "cpu" or has_cuda_provider()]
    served: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
    text: dict[str, list[float]] = {rt: [] for rt in RUNTIMES}
    after_idle: dict[str, float] = {}
    after_restart: dict[str, float] = {}
    restart_s: dict[str, float] = {}
    peak_rss: dict[str, float] = {}
    devices: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        root = Path(tmp)
        images_dir = root / "images"
        paths = make_photos(images_dir, args.images)
        local = InProcessWorker(args.threads, args.device, args.precision)
        env = {
            "MODEL_NAME": MODEL,
            "MODEL_PRETRAINED": "none",
            "DEVICE": args.device,
            "EMBEDDING_PRECISION": args.precision,
            "EMBEDDING_TORCH_THREADS": str(args.threads),
            "EMBEDDING_MAX_BATCH_SIZE": str(args.batch),
            "EMBEDDING_ONNX_OPTIMIZATION": args.onnx_optimization,
            "LOG_LEVEL": "WARNING",
        }
        if "onnx" in runtimes:  # export ahead (once per model): the figures are the serving ones, not the export's
            export_env = {**os.environ, **embedding_env(images_dir, 8000, EMBEDDING_RUNTIME="onnx", **env)}
            subprocess.run([sys.executable, "-m", "embedding", "export"], env=export_env, check=True)
        try:
            devices["reference"] = str(local.call("device_type"))
            with contextlib.ExitStack() as stack:
                services: dict[str, EmbeddingService] = {}
                clients: dict[str, EmbeddingClient] = {}
                for rt in runtimes:
                    services[rt] = stack.enter_context(
                        run_embedding_service(images_dir, root, EMBEDDING_RUNTIME=rt, **env)
                    )
                    clients[rt] = stack.enter_context(EmbeddingClient(services[rt].url, timeout=600))
                    devices[rt] = clients[rt].info().device
                    service_images_per_s(clients[rt], paths[: args.batch], args.batch, 1)  # warm-up
                    clients[rt].embed_texts(["warm-up"])
                raw, reference = [], []
                for round_ in range(args.rounds):
                    raw.append(float(local.call("raw_images_per_s", args.batch, args.images)))
                    reference.append(float(local.call("reference_images_per_s", images_dir, paths, args.batch)))
                    for rt in runtimes:
                        served[rt].append(service_images_per_s(clients[rt], paths, args.batch, args.clients))
                    figures = ", ".join(f"{rt} {served[rt][-1]:.2f}" for rt in runtimes)
                    print(f"round {round_ + 1}: raw {raw[-1]:.2f}, reference {reference[-1]:.2f}, {figures} images/s")
                local.call("text_ms", QUERIES[0])
                raw_text = []
                for index in range(args.queries):
                    query = QUERIES[index % len(QUERIES)]
                    raw_text.append(float(local.call("text_ms", query)))
                    for rt in runtimes:
                        text[rt].append(service_text_ms(clients[rt], query))
                print(f"idle {args.idle_s:.0f} s, then one query each", flush=True)
                time.sleep(args.idle_s)
                for rt in runtimes:
                    after_idle[rt] = service_text_ms(clients[rt], QUERIES[1])
                    peak_rss[rt] = tree_peak_rss_mib(services[rt].pid)
            for rt in [] if args.skip_restart else runtimes:  # stopped above; start again: first query once healthy
                started = time.perf_counter()
                with (
                    run_embedding_service(images_dir, root, EMBEDDING_RUNTIME=rt, **env) as service,
                    EmbeddingClient(service.url, timeout=600) as client,
                ):
                    restart_s[rt] = time.perf_counter() - started
                    after_restart[rt] = service_text_ms(client, QUERIES[2])
        finally:
            local.close()
    if any(device != args.device for device in devices.values()):
        raise RuntimeError(f"asked for {args.device}, but the sides ran on {devices}")
    reference_rate = statistics.median(reference)
    default = "onnx" if "onnx" in runtimes and args.device == "cpu" else "torch"  # what EMBEDDING_RUNTIME=auto runs
    service_rate = statistics.median(served[default])
    figures: dict = {
        "benchmark": "embedding",
        "model": f"{MODEL} (random weights)",
        "device": args.device,
        "devices": devices,
        "precision": args.precision,
        "threads": args.threads,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "batch": args.batch,
        "clients": args.clients,
        "images_per_round": args.images,
        "rounds": args.rounds,
        "service_runtime": default,
        "raw_model_images_per_s": round(statistics.median(raw), 2),
        "reference_images_per_s": round(reference_rate, 2),
        "service_images_per_s": round(service_rate, 2),
        "ratio": round(service_rate / reference_rate, 3),
        "round_ratios": [round(s / r, 3) for s, r in zip(served[default], reference, strict=True)],
        "text_p50_ms": round(statistics.median(text[default]), 1),
        "raw_text_p50_ms": round(statistics.median(raw_text), 1),
        "text_ratio": round(statistics.median(text[default]) / statistics.median(raw_text), 3),
        "onnx_optimization": args.onnx_optimization,
        "idle_s": args.idle_s,
    }
    for rt in RUNTIMES:
        figures[f"{rt}_images_per_s"] = _median(served[rt])
        figures[f"{rt}_text_p50_ms"] = _median(text[rt])
        figures[f"{rt}_text_after_idle_ms"] = round(after_idle[rt], 1) if rt in after_idle else None
        figures[f"{rt}_text_after_restart_ms"] = round(after_restart[rt], 1) if rt in after_restart else None
        figures[f"{rt}_restart_to_healthy_s"] = round(restart_s[rt], 1) if rt in restart_s else None
        figures[f"{rt}_peak_rss_mib"] = peak_rss.get(rt)
    figures["runtime_images_ratio"] = _ratio(figures["onnx_images_per_s"], figures["torch_images_per_s"])
    figures["runtime_text_ratio"] = _ratio(figures["onnx_text_p50_ms"], figures["torch_text_p50_ms"])
    figures["runtime_round_ratios"] = (
        [round(o / t, 3) for o, t in zip(served["onnx"], served["torch"], strict=True)] if served["onnx"] else None
    )
    return figures
