"""The HTTP API as a real server process (``python -m search_app.api``), for tests and benchmarks."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from pathlib import Path

from testkit.procs import free_port, start_module, stop, wait_http_ok


@contextlib.contextmanager
def api_server(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """The API as deployed on 127.0.0.1 and a free port; yields its base URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    process = start_module(
        "search_app.api", env={**env, "API_HOST": "127.0.0.1", "API_PORT": str(port)}, log_path=log_path
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}/api/v1/health", timeout=120, process=process)
        yield url
    finally:
        stop(process)
