"""The demo: a tiny OpenCLIP model trained here on the synthetic world of :mod:`testkit.demo_world`, and
the recording of the real stack running it.

``python -m demo.train_model`` writes ``demo/dy-demo.pt`` and its held-out scores beside it (the paths are
testkit's ``DEMO_*``, since the tests load the model too); the embedding service loads it with
``MODEL_NAME=dy-demo``, ``MODEL_CONFIG=demo/dy-demo.json`` and ``MODEL_PRETRAINED=demo/dy-demo.pt``.
``python -m demo.record`` writes ``docs/demo.gif`` and ``docs/screenshots/``.
"""
