"""The sides of ``bench embedding``: per runtime the reference worker and the service, and their rounds.

See :mod:`bench.embedding` for what is measured and why the sides are fair to each other.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data as photos

from bench.encoder import RUNTIMES, EncoderWorker
from bench.pss import PeakPss
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from embedding.onnx_runtime import has_cuda_provider
from testkit.embedding import EmbeddingService, embedding_env

MODEL = "ViT-B-32"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field")
SETTLE_S = 0.05  # pause before each timed text call (outside the clock)
Starter = Callable[[str, Path, Path, dict[str, str]], AbstractContextManager[EmbeddingService]]


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


def service_images_per_s(client: EmbeddingClient, paths: list[str], batch: int, clients: int) -> float:
    requests = [paths[i : i + batch] for i in range(0, len(paths), batch)]
    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client.embed_image_paths, requests))
    elapsed = time.perf_counter() - started
    if any(error for result in results for error in result.errors):
        raise RuntimeError(f"the service failed images: {[r.errors for r in results]}")
    return len(paths) / elapsed


def service_text_ms(client: EmbeddingClient, text: str) -> float:
    started = time.perf_counter()
    client.embed_texts([text])
    return (time.perf_counter() - started) * 1000


def rotated(items: list[Any], by: int) -> list[Any]:
    by %= len(items)
    return items[by:] + items[:by]


def service_env(args: argparse.Namespace) -> dict[str, str]:
    """The settings both a runtime's service and its reference run with."""
    return {
        "MODEL_NAME": MODEL,
        "MODEL_PRETRAINED": "none",
        "DEVICE": args.device,
        "EMBEDDING_PRECISION": args.precision,
        "EMBEDDING_TORCH_THREADS": str(args.threads),
        "EMBEDDING_DECODE_THREADS": str(args.decode_threads),
        "EMBEDDING_MAX_BATCH_SIZE": str(args.batch),
        "EMBEDDING_ONNX_OPTIMIZATION": args.onnx_optimization,
        "LOG_LEVEL": "WARNING",
    }


class Sides:
    """Per runtime: the reference worker, the service, its client and its memory sampler."""

    def __init__(
        self, stack: contextlib.ExitStack, args: argparse.Namespace, images_dir: Path, root: Path, start: Starter
    ) -> None:
        self.runtimes = [rt for rt in RUNTIMES if rt == "torch" or args.device == "cpu" or has_cuda_provider()]
        env = {**embedding_env(images_dir, 8000), **service_env(args)}  # the port is unused here
        if "onnx" in self.runtimes:  # exported ahead (once per model): the figures are the serving ones
            export_env = {**os.environ, **env, "EMBEDDING_RUNTIME": "onnx"}
            subprocess.run([sys.executable, "-m", "embedding", "export"], env=export_env, check=True)
        self.reference: dict[str, EncoderWorker] = {}
        self.service: dict[str, EmbeddingService] = {}
        self.client: dict[str, EmbeddingClient] = {}
        self.memory: dict[str, PeakPss] = {}
        self.devices: dict[str, str] = {}
        for rt in self.runtimes:  # the services first, one at a time: a start on a busy machine is slow
            self.service[rt] = stack.enter_context(start(rt, images_dir, root, service_env(args)))
            self.client[rt] = stack.enter_context(EmbeddingClient(self.service[rt].url, timeout=600))
            self.devices[rt] = self.client[rt].info().device
            self.memory[rt] = stack.enter_context(PeakPss(self.service[rt].pid))
        for rt in self.runtimes:
            self.reference[rt] = stack.enter_context(EncoderWorker(rt, env, args.threads, args.decode_threads))
            self.devices[f"{rt}_reference"] = str(self.reference[rt].call("device_type"))


def measure_images(sides: Sides, args: argparse.Namespace, images_dir: Path, paths: list[str]) -> dict[str, Any]:
    """Per round, each runtime's model alone (information), reference and service, in a rotating order."""
    sides_of_a_round = ("raw", "ref", "svc")
    rates: dict[str, list[float]] = {f"{side}_{rt}": [] for rt in sides.runtimes for side in sides_of_a_round}
    for rt in sides.runtimes:  # warm-up: the decode pool, the HTTP connections
        sides.reference[rt].call("images_per_s", images_dir, paths[: args.batch], args.batch)
        service_images_per_s(sides.client[rt], paths[: args.batch], args.batch, 1)
    turns = [(side, rt) for rt in sides.runtimes for side in sides_of_a_round]
    for number in range(args.rounds):
        for side, rt in rotated(turns, number):
            if side == "raw":
                rate = float(sides.reference[rt].call("raw_images_per_s", args.batch, args.images))
            elif side == "ref":
                rate = float(sides.reference[rt].call("images_per_s", images_dir, paths, args.batch))
            else:
                rate = service_images_per_s(sides.client[rt], paths, args.batch, args.clients)
            rates[f"{side}_{rt}"].append(rate)
        for memory in sides.memory.values():
            memory.sample()
        print(f"round {number + 1}: " + ", ".join(f"{k} {v[-1]:.2f}" for k, v in rates.items()) + " images/s")
    figures: dict[str, Any] = {}
    for rt in sides.runtimes:
        service, reference = rates[f"svc_{rt}"], rates[f"ref_{rt}"]
        figures |= {
            f"{rt}_raw_model_images_per_s": round(statistics.median(rates[f"raw_{rt}"]), 2),
            f"{rt}_images_per_s": round(statistics.median(service), 2),
            f"{rt}_reference_images_per_s": round(statistics.median(reference), 2),
            f"{rt}_ratio": round(statistics.median(s / r for s, r in zip(service, reference, strict=True)), 3),
            f"{rt}_round_ratios": [round(s / r, 3) for s, r in zip(service, reference, strict=True)],
        }
    if set(RUNTIMES) <= set(sides.runtimes):
        onnx, torch = rates["svc_onnx"], rates["svc_torch"]
        figures["runtime_images_ratio"] = round(statistics.median(onnx) / statistics.median(torch), 3)
        figures["runtime_round_ratios"] = [round(o / t, 3) for o, t in zip(onnx, torch, strict=True)]
    return figures


def measure_texts(sides: Sides, texts: list[str]) -> dict[str, Any]:
    times: dict[str, list[float]] = {f"{kind}_{rt}": [] for rt in sides.runtimes for kind in ("ref", "full", "svc")}
    turns = [(kind, rt) for rt in sides.runtimes for kind in ("ref", "full", "svc")]
    for rt in sides.runtimes:  # warm-up
        sides.reference[rt].call("text_ms", "warm-up", True)
        sides.reference[rt].call("text_ms", "warm-up", False)
        service_text_ms(sides.client[rt], "warm-up")
    for number, text in enumerate(texts):
        for kind, rt in rotated(turns, number):
            time.sleep(SETTLE_S)
            if kind == "svc":
                elapsed = service_text_ms(sides.client[rt], text)
            else:
                elapsed = float(sides.reference[rt].call("text_ms", text, kind == "ref"))
            times[f"{kind}_{rt}"].append(elapsed)
    figures: dict[str, Any] = {}
    for rt in sides.runtimes:
        service, reference, full = times[f"svc_{rt}"], times[f"ref_{rt}"], times[f"full_{rt}"]
        per_text = [s / r for s, r in zip(service, reference, strict=True)]
        figures |= {
            f"{rt}_text_p50_ms": round(statistics.median(service), 2),
            f"{rt}_reference_text_p50_ms": round(statistics.median(reference), 2),
            f"{rt}_text_ratio": round(statistics.median(service) / statistics.median(reference), 3),
            f"{rt}_text_ratio_iqr": [round(float(q), 3) for q in np.percentile(per_text, [25, 75])],
            f"{rt}_untrimmed_text_p50_ms": round(statistics.median(full), 2),
            f"{rt}_trim_gain": round(statistics.median(full) / statistics.median(reference), 3),
        }
    if set(RUNTIMES) <= set(sides.runtimes):
        figures["runtime_text_ratio"] = round(figures["onnx_text_p50_ms"] / figures["torch_text_p50_ms"], 3)
    return figures


def restart_figures(
    args: argparse.Namespace, runtimes: list[str], images_dir: Path, root: Path, start: Starter
) -> dict[str, Any]:
    figures: dict[str, Any] = {}
    for rt in runtimes:  # stopped by now; start again: the first text once healthy
        started = time.perf_counter()
        with (
            start(rt, images_dir, root, service_env(args)) as service,
            EmbeddingClient(service.url, timeout=600) as client,
        ):
            figures[f"{rt}_restart_to_healthy_s"] = round(time.perf_counter() - started, 1)
            figures[f"{rt}_text_after_restart_ms"] = round(service_text_ms(client, "a dog in the snow"), 1)
    return figures
