"""``python -m embedding``: serve the embedding API; ``python -m embedding export``: export the ONNX bundle, exit.

Both read their settings from the environment. ``export`` is the one-shot job for an image that
carries no PyTorch: run it (from an image that has PyTorch) with the same ``MODEL_*`` settings and
``MODEL_CACHE_DIR`` before the service starts; a bundle already cached and whole needs no PyTorch.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from dyimages_common.process.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from embedding.settings import EmbeddingSettings

log = logging.getLogger("embedding")


def _fail(message: str, code: int) -> int:
    """One line on stderr (a one-shot job's whole output when it fails), and the exit code."""
    sys.stderr.write(" ".join(message.split()) + "\n")
    return code


def run() -> int:
    """Load the settings and serve until stopped; the exit code (2: a bad setting)."""
    settings = settings_or_exit(EmbeddingSettings)
    # torch's OpenMP threads spin while they wait for work by default. Where the CPU is shared (the
    # compose stack on one host, a busy laptop) a spinning thread steals the core its partner
    # needs (the model ran several times slower with 2 threads: bench/RESULTS.md). Waiting passively
    # costs little when the cores are free. The worker processes inherit the variable; an explicit value is kept.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    # Two malloc arenas in the worker processes: decoding large photos in several threads otherwise
    # fragments one heap per thread and the service's memory keeps growing with the photos decoded
    # (bench/RESULTS.md, "library"). glibc reads it when a process starts: the workers inherit it.
    os.environ.setdefault("MALLOC_ARENA_MAX", "2")
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
            return _fail(f"configuration error: {exc}", 2)
        # The workers get the resolved choice, so none of them probes for CUDA (or imports torch) again.
        settings = settings.model_copy(update={"embedding_runtime": runtime.name, "device": runtime.device})
        return serve(settings, info)
    finally:
        cleanup()


def export() -> int:
    """Make sure the ONNX bundle for the settings is cached whole: 0 when it is (exported now or
    before), 2 for settings that cannot be exported, 1 when the export itself failed."""
    settings = settings_or_exit(EmbeddingSettings)
    configure_logging("embedding", settings.log_level, settings.log_format)
    from embedding.onnx_bundle import BundleMissing, find_bundle
    from embedding.runtime import ModelConfigError, torch_installed

    try:
        folder = find_bundle(settings)
    except BundleMissing as missing:
        if not torch_installed():
            return _fail(f"cannot export: {missing}, and PyTorch/OpenCLIP are not installed in this image", 1)
        from embedding.onnx_export import ExportError, ensure_bundle

        try:
            folder = ensure_bundle(settings)
        except (ModelConfigError, ExportError) as exc:
            return _fail(f"configuration error: {exc}", 2)
        except Exception as exc:  # weights that do not download, a full disk: one line, details at debug
            log.debug("the ONNX export failed", exc_info=True)
            return _fail(f"the ONNX export failed: {exc!r}", 1)
    log.info("ONNX bundle for %s (%s) ready: %s", settings.model_name, settings.model_pretrained, folder)
    return 0


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.callback(invoke_without_command=True)
def _serve(context: typer.Context) -> None:
    """Serve the embedding API (GET /health, GET /info, POST /embed, GET /metrics) on
    EMBEDDING_HOST:EMBEDDING_PORT with the OpenCLIP model MODEL_NAME / MODEL_PRETRAINED on DEVICE.

    Every setting comes from environment variables (see .env.example). SIGTERM or SIGINT stops the
    server and every worker process.
    """
    if context.invoked_subcommand is None:
        raise typer.Exit(run())


@app.command("export")
def _export() -> None:
    """Export the ONNX bundle of MODEL_NAME / MODEL_PRETRAINED into MODEL_CACHE_DIR and exit: 0 when it
    is ready (an existing whole bundle counts), non-zero with a one-line error otherwise."""
    raise typer.Exit(export())


def main() -> None:
    app()


if __name__ == "__main__":
    main()
