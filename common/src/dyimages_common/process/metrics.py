"""Prometheus /metrics for the workers (the embedding service serves its own on its HTTP port)."""

from __future__ import annotations

import logging

from prometheus_client import start_http_server

log = logging.getLogger(__name__)


def serve_metrics(port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 - containers publish it
    """Expose the default registry on ``port``; 0 leaves it off."""
    if port:
        start_http_server(port, addr=addr)
        log.info("metrics on :%d/metrics", port)
