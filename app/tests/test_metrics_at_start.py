"""``python -m search_app`` serves /metrics from process start, before any page is opened (so Prometheus
sees the app up on a fresh stack), in the same process as Streamlit's server."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from testkit.procs import free_port, start_module, stop, wait_http_ok

pytestmark = pytest.mark.integration


def test_metrics_answer_before_any_page_is_viewed_and_stop_with_the_app(tmp_path: Path) -> None:
    app_port, metrics_port = free_port(), free_port()
    env = {
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(app_port),
        "METRICS_PORT": str(metrics_port),
        "QDRANT_PATH": str(tmp_path / "qdrant"),
        "REDIS_URL": "",
    }
    process = start_module("search_app", env=env, log_path=tmp_path / "app.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{metrics_port}/metrics", timeout=120, process=process)
        body = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        # The query cache's counter is registered from the start, every label at 0.
        assert 'dyimages_app_query_cache_total{kind="results",outcome="hit"} 0.0' in body
        wait_http_ok(f"http://127.0.0.1:{app_port}/_stcore/health", timeout=120, process=process)
        assert process.poll() is None, "one process serves both"
    finally:
        code = stop(process)
    assert code == 0, (tmp_path / "app.log").read_text()[-2000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)
