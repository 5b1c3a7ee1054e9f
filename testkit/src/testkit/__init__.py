"""Helpers for tests and benchmarks: generated images, a local HTTP server, real service processes.

Nothing here is a fake of a service: RabbitMQ, the embedding service and Qdrant (embedded mode)
are the real ones, started or isolated per test.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[3]
TINY_MODEL_CONFIG = Path(__file__).resolve().parent / "models" / "dy-tiny.json"
TINY_MODEL = "dy-tiny"
# The demo model (testkit.demo_world's pictures) lives in the demo/ folder, where users find it too;
# `python -m demo.train_model` writes it.
DEMO_MODEL = "dy-demo"
DEMO_MODEL_CONFIG = REPO_ROOT / "demo" / "dy-demo.json"
DEMO_CHECKPOINT = REPO_ROOT / "demo" / "dy-demo.pt"
DEMO_SCORES = REPO_ROOT / "demo" / "dy-demo-scores.json"
