"""The HTTP API as a real server process (``python -m search_app.api``), for tests and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from testkit.procs import serving_module


@contextlib.contextmanager
def api_server(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """The API as deployed on 127.0.0.1 and a free port; yields its base URL (``http://127.0.0.1:PORT``)."""
    with serving_module(
        "search_app.api", env, log_path, health="/api/v1/health", host_var="API_HOST", port_var="API_PORT"
    ) as url:
        yield url
