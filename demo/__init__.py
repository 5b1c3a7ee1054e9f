"""The demo model: a tiny OpenCLIP model trained here on a synthetic world of captioned shapes.

``python -m demo.train_model`` writes ``demo/dy-demo.pt`` and its held-out scores; the embedding
service loads it with ``MODEL_NAME=dy-demo``, ``MODEL_CONFIG=demo/dy-demo.json`` and
``MODEL_PRETRAINED=demo/dy-demo.pt``.
"""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent
DEMO_MODEL = "dy-demo"
DEMO_MODEL_CONFIG = DEMO_DIR / "dy-demo.json"
DEMO_CHECKPOINT = DEMO_DIR / "dy-demo.pt"
DEMO_SCORES = DEMO_DIR / "dy-demo-scores.json"
