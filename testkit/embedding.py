"""A real embedding service process (LitServe + OpenCLIP) with the tiny random-weight model."""

from __future__ import annotations

import contextlib
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


def embedding_env(images_dir: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "MODEL_NAME": TINY_MODEL,
        "MODEL_PRETRAINED": "none",
        "MODEL_CONFIG": str(TINY_MODEL_CONFIG),
        "DEVICE": "cpu",
        "IMAGES_DIR": str(images_dir),
        "EMBEDDING_PORT": str(port),
        "EMBEDDING_HOST": "127.0.0.1",
        **extra,
    }


@contextlib.contextmanager
def run_embedding_service(images_dir: Path, log_dir: Path, **extra: str) -> Iterator[EmbeddingService]:
    """Start ``python -m embedding`` on a free port, wait for /health, stop it (and its workers) after."""
    port = free_port()
    env = embedding_env(images_dir, port, **extra)
    log_path = log_dir / f"embedding-{port}.log"
    process = start_module("embedding", env=env, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/health", timeout=180, process=process)
        yield EmbeddingService(url=url, env=env, log_path=log_path)
    finally:
        stop(process)
