"""The app's Prometheus /metrics server (the query cache's counter), started once per process.

``python -m search_app`` starts it before Streamlit serves, so Prometheus sees the app up on a fresh
stack before anyone opens a page; every script run asks again (a no-op then), which also covers the
app started with a plain ``streamlit run``.
"""

from __future__ import annotations

import threading

from dyimages_common.process.metrics import serve_metrics

_started: set[int] = set()
_lock = threading.Lock()


def start_metrics(port: int) -> None:
    """Serve /metrics on ``port`` unless this process already does; 0 leaves it off."""
    with _lock:
        if not port or port in _started:
            return
        # Registers the counter, so every label reads 0 from the start rather than appearing later.
        import search_app.search.cache  # noqa: F401

        serve_metrics(port)
        _started.add(port)
