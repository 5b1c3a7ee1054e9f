"""Helpers for tests and benchmarks: generated images, a local HTTP server, real service processes.

Nothing here is a fake of a service: RabbitMQ, the embedding service and Qdrant (embedded mode)
are the real ones, started or isolated per test.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
TINY_MODEL_CONFIG = Path(__file__).resolve().parent / "models" / "dy-tiny.json"
TINY_MODEL = "dy-tiny"
