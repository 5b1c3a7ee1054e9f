"""A real embedding service process (LitServe + OpenCLIP) with the tiny random-weight model."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from testkit import TINY_MODEL, TINY_MODEL_CONFIG
from testkit.procs import free_port, start_module, stop, wait_http_ok


@dataclass
class EmbeddingService:
    url: str
    env: dict[str, str]
    log_path: Path
    pid: int  # the main process (its workers are its children): benchmarks read their memory


# Exported ONNX bundles are keyed by model and weights and checked whole before use, so every test
# and benchmark on this machine can share one cache (each model is exported once, not per test).
MODEL_CACHE_DIR = Path(tempfile.gettempdir()) / "dyimages-test-models"


def embedding_env(images_dir: Path, port: int, **extra: str) -> dict[str, str]:
    """The tiny model on the CPU; ``extra`` overrides (``DEVICE=cuda``, ``EMBEDDING_RUNTIME=torch``, ...)."""
    return {
        "MODEL_NAME": TINY_MODEL,
        "MODEL_PRETRAINED": "none",
        "MODEL_CONFIG": str(TINY_MODEL_CONFIG),
        "MODEL_CACHE_DIR": str(MODEL_CACHE_DIR),
        "DEVICE": "cpu",
        "IMAGES_DIR": str(images_dir),
        "EMBEDDING_PORT": str(port),
        "EMBEDDING_HOST": "127.0.0.1",
        **extra,
    }


@contextlib.contextmanager
def run_embedding_service(
    images_dir: Path, log_dir: Path, *, ready_timeout_s: float = 180, **extra: str
) -> Iterator[EmbeddingService]:
    """Start ``python -m embedding`` on a free port, wait for /health (up to ``ready_timeout_s``: a
    benchmark on a busy machine waits longer), stop it (and its workers) after."""
    port = free_port()
    env = embedding_env(images_dir, port, **extra)
    log_path = log_dir / f"embedding-{port}.log"
    process = start_module("embedding", env=env, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/health", timeout=ready_timeout_s, process=process)
        yield EmbeddingService(url=url, env=env, log_path=log_path, pid=process.pid)
    finally:
        stop(process)


@contextlib.contextmanager
def other_weights_service(images_dir: Path, root: Path, seed: int = 1) -> Iterator[EmbeddingService]:
    """A second real service: the same model config and vector size as :func:`run_embedding_service`'s, other
    weights (a checkpoint of another seed, written under ``root``): told apart only by ``pretrained``."""
    import open_clip  # the service's own dependencies: imported only by the tests that start this one
    import torch

    open_clip.add_model_config(TINY_MODEL_CONFIG)
    torch.manual_seed(seed)
    checkpoint = root / f"dy-tiny-seed-{seed}.pt"
    torch.save(open_clip.create_model(TINY_MODEL, pretrained=None).state_dict(), checkpoint)
    with run_embedding_service(images_dir, root, MODEL_PRETRAINED=str(checkpoint)) as service:
        yield service
