"""Embedding throughput and latency: each runtime's service against the same runtime in-process.

``python -m bench embedding [--quick] [--threads N] [--decode-threads D] [--batch B] [--clients C]
[--images N] [--rounds R] [--queries Q] [--idle-s S] [--device cpu|cuda]``

For each runtime (``torch``: OpenCLIP in PyTorch; ``onnx``: ONNX Runtime on the exported bundle), the
real service (``python -m embedding`` with ``EMBEDDING_RUNTIME`` set) runs beside the in-process
reference on the same runtime (:mod:`bench.encoder`): same model (ViT-B-32 with random weights: the
compute of trained weights), device, precision, model threads, decode threads and batch size, and the
same token handling (both cut a text after its <end_of_text>). The reference does a strict subset of
the service's work, so ``{rt}_ratio`` (service images/s ÷ reference images/s) above 1 in every round, or
``{rt}_text_ratio`` (service text p50 ÷ reference text p50) below 1 across its interquartile range of
per-text ratios, is impossible and fails the run.

* Images: C concurrent HTTP clients each send requests of B stored paths, as the indexer does. The
  references and the services take turns in rounds on the same images (the order rotates each
  round, so no side always follows another); medians over rounds, ``{rt}_round_ratios`` the spread.
  ``{rt}_raw_model_images_per_s`` (information): the model alone on ready pixels, a turn of each round.
* Text: one text per request; each side in turn (the order rotating text by text, a short pause
  before each timed call), p50 over Q distinct texts; ``{rt}_text_ratio_iqr`` is the spread of the
  per-text ratios. ``{rt}_trim_gain`` is the reference's p50 on all 77 ids ÷ its p50 on the cut ids:
  what the cut alone is worth on that runtime (``trim_gain``: the CPU default's, ONNX).
* Across runtimes, only under ``runtime_*`` (ONNX ÷ PyTorch): the services' images/s, per round too,
  and their text p50 (both cut).
* Per service: the first text after ``--idle-s`` of idle, the first after a restart once /health
  answers, the restart's time, and ``{rt}_pss_mib``: the largest PSS of the service's processes
  summed (:mod:`bench.pss`), sampled through the rounds.

On a GPU (``--device cuda``) the services keep their GPU defaults (one model thread, a decode thread
per core, fp16) unless ``--threads``/``--decode-threads`` say otherwise, and the references get the
same; the ONNX side runs only with onnxruntime's CUDA provider (its fields are null otherwise).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from bench import embedding_ray
from bench.embedding_sides import (
    MODEL,
    Sides,
    make_photos,
    measure_images,
    measure_texts,
    restart_figures,
    service_text_ms,
)
from bench.encoder import RUNTIMES
from bench.figures import READY_S, Limit
from bench.texts import query_texts
from embedding.api import thread_counts
from embedding.settings import EmbeddingSettings
from testkit.embedding import EmbeddingService, run_embedding_service

SUBSET = "the reference is a strict subset of the service's work"
PER_RUNTIME = (
    "images_per_s",
    "reference_images_per_s",
    "ratio",
    "round_ratios",
    "text_p50_ms",
    "reference_text_p50_ms",
    "text_ratio",
    "text_ratio_iqr",
    "untrimmed_text_p50_ms",
    "trim_gain",
    "text_after_idle_ms",
    "pss_mib",
)
LIMITS = {
    **embedding_ray.LIMITS,
    **{f"{rt}_ratio": Limit(at_most=1.0, why=SUBSET, spread=f"{rt}_round_ratios") for rt in RUNTIMES},
    **{f"{rt}_text_ratio": Limit(at_least=1.0, why=SUBSET, spread=f"{rt}_text_ratio_iqr") for rt in RUNTIMES},
}


def REQUIRED(figures: dict[str, Any]) -> list[str]:
    """Both runtimes' fields; on a GPU without onnxruntime's CUDA provider, the torch side's only."""
    if figures.get("server") == "ray":
        return list(embedding_ray.REQUIRED)
    measured = figures.get("runtimes")
    measured = measured if isinstance(measured, list) else list(RUNTIMES)
    names = ["runtimes", "device", "threads", "decode_threads", "batch", "rounds", "queries", "trim_gain"]
    names += [f"{rt}_{name}" for rt in measured for name in PER_RUNTIME]
    if not figures.get("skip_restart"):
        names += [f"{rt}_text_after_restart_ms" for rt in measured]
    if set(RUNTIMES) <= set(measured):
        names += ["runtime_images_ratio", "runtime_text_ratio", "runtime_round_ratios"]
    return names


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench embedding")
    parser.add_argument("--quick", action="store_true", help="fewer images, rounds and texts (a few minutes)")
    parser.add_argument("--threads", type=int, default=0, help="model threads, all sides (default: the service's)")
    parser.add_argument("--decode-threads", type=int, default=0, help="decode threads, all sides (the service's)")
    parser.add_argument("--batch", type=int, default=8, help="images per model batch and per request")
    parser.add_argument("--clients", type=int, default=2, help="concurrent HTTP clients")
    parser.add_argument("--images", type=int, default=0, help="images per round (default 96, quick 16)")
    parser.add_argument("--rounds", type=int, default=0, help="rounds (default 5, quick 2)")
    parser.add_argument("--queries", type=int, default=0, help="texts (default 60, quick 15)")
    parser.add_argument("--idle-s", type=float, default=-1, help="idle before the 'after idle' text (120, quick 20)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=os.environ.get("DEVICE", "cpu") or "cpu")
    parser.add_argument("--precision", choices=("fp32", "fp16"), default="", help="default: fp32 CPU, fp16 CUDA")
    parser.add_argument("--skip-restart", action="store_true", help="no restart figures (saves two service starts)")
    parser.add_argument("--onnx-optimization", default="all", help="EMBEDDING_ONNX_OPTIMIZATION, both onnx sides")
    parser.add_argument(
        "--server", choices=("litserve", "ray"), default="litserve", help="ray: Ray Serve beside LitServe"
    )
    args = parser.parse_args(argv)
    args.images = args.images or (16 if args.quick else 96)
    args.rounds = args.rounds or (2 if args.quick else 5)
    args.queries = args.queries or (15 if args.quick else 60)
    args.idle_s = args.idle_s if args.idle_s >= 0 else (20.0 if args.quick else 120.0)
    args.precision = args.precision or ("fp16" if args.device == "cuda" else "fp32")
    if args.device == "cuda":
        import torch  # only here: the CPU runs never pay for importing it before the services start

        if not torch.cuda.is_available():
            raise SystemExit("bench embedding: --device cuda (or DEVICE=cuda) but torch sees no CUDA device")
    settings = EmbeddingSettings(embedding_torch_threads=args.threads, embedding_decode_threads=args.decode_threads)
    args.threads, args.decode_threads = thread_counts(settings, args.device)  # what the service would run
    return args


@contextlib.contextmanager
def start_service(runtime: str, images_dir: Path, log_dir: Path, env: dict[str, str]) -> Iterator[EmbeddingService]:
    """One runtime's service (the hook where another server would start instead)."""
    with run_embedding_service(
        images_dir, log_dir, ready_timeout_s=READY_S, EMBEDDING_RUNTIME=runtime, **env
    ) as service:
        yield service


def run(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    if args.server == "ray":
        return {"server": "ray", **embedding_ray.run(args)}
    # The service waits passively in OpenMP and ONNX Runtime unless told otherwise
    # (embedding/__main__.py); the references inherit the same policy.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    figures: dict[str, Any] = {"model": f"{MODEL} (random weights)", "device": args.device}
    with tempfile.TemporaryDirectory(prefix="bench-embedding-") as tmp:
        root = Path(tmp)
        images_dir = root / "images"
        paths = make_photos(images_dir, args.images)
        with contextlib.ExitStack() as stack:
            sides = Sides(stack, args, images_dir, root, start_service)
            figures |= measure_images(sides, args, images_dir, paths)
            figures |= measure_texts(sides, query_texts(args.queries))
            print(f"idle {args.idle_s:.0f} s, then one text each", flush=True)
            time.sleep(args.idle_s)
            for rt in sides.runtimes:
                figures[f"{rt}_text_after_idle_ms"] = round(service_text_ms(sides.client[rt], "a cat on a hill"), 1)
                figures[f"{rt}_pss_mib"] = max(sides.memory[rt].peak_mib, sides.memory[rt].sample())
            devices, runtimes = sides.devices, sides.runtimes
        if not args.skip_restart:
            figures |= restart_figures(args, runtimes, images_dir, root, start_service)
    if any(device != args.device for device in devices.values()):
        raise RuntimeError(f"asked for {args.device}, but the sides ran on {devices}")
    default = "onnx" if "onnx" in runtimes and args.device == "cpu" else "torch"  # what EMBEDDING_RUNTIME=auto runs
    return figures | {
        "runtime": default,
        "runtimes": runtimes,
        "trim_gain": figures[f"{default}_trim_gain"],
        "devices": devices,
        "precision": args.precision,
        "threads": args.threads,
        "decode_threads": args.decode_threads,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
        "batch": args.batch,
        "clients": args.clients,
        "images_per_round": args.images,
        "rounds": args.rounds,
        "queries": args.queries,
        "onnx_optimization": args.onnx_optimization,
        "idle_s": args.idle_s,
        "skip_restart": args.skip_restart,
    }
