"""``python -m embedding``: serve the embedding API (settings from the environment)."""

from __future__ import annotations

import os
import sys

import typer

from dyimages_common.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from embedding.settings import EmbeddingSettings


def run() -> int:
    """Load the settings and serve until stopped; the exit code (2: a bad setting)."""
    settings = settings_or_exit(EmbeddingSettings)
    # torch's OpenMP threads spin while they wait for work by default. Where the CPU is shared (the
    # compose stack on one host, a busy laptop) a spinning thread steals the core its partner
    # needs: ViT-B-32 ran 3x slower here with 2 threads. Waiting passively costs little when the
    # cores are free. The worker processes inherit the variable; an explicit value is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    configure_logging("embedding", settings.log_level, settings.log_format)
    # Before anything imports prometheus_client: every process of the service shares one directory.
    from embedding.metrics_dir import use_multiprocess_dir

    cleanup = use_multiprocess_dir()
    try:
        from embedding.runtime import ModelConfigError, describe, resolve_runtime
        from embedding.server import serve

        try:
            runtime = resolve_runtime(settings)
            info = describe(settings, runtime)
        except ModelConfigError as exc:
            sys.stderr.write(f"configuration error: {exc}\n")
            return 2
        # The workers get the resolved choice, so none of them probes for CUDA (or imports torch) again.
        settings = settings.model_copy(update={"embedding_runtime": runtime.name, "device": runtime.device})
        return serve(settings, info)
    finally:
        cleanup()


def _command() -> None:
    """Serve the embedding API (GET /health, GET /info, POST /embed, GET /metrics) on
    EMBEDDING_HOST:EMBEDDING_PORT with the OpenCLIP model MODEL_NAME / MODEL_PRETRAINED on DEVICE.

    Every setting comes from environment variables (see .env.example). SIGTERM or SIGINT stops the
    server and every worker process.
    """
    raise typer.Exit(run())


def main() -> None:
    typer.run(_command)


if __name__ == "__main__":
    main()
