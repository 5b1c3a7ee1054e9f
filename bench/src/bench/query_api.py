"""The HTTP API's path in ``python -m bench query``: the measured texts again, through the API as deployed.

``python -m search_app.api`` (uvicorn, a process of its own) over the same store and the same embedding
service (so the same runtime), no Redis cache (every text is distinct anyway); each text is one
``GET /api/v1/search?q=…&limit=10`` over a kept-alive connection, timed from request to parsed JSON.
``api_ratio`` is the API's p50 over the reference's p50 (the raw encoder plus the raw store search of the
same texts, measured earlier in the run by :mod:`bench.query`): the reference is a strict subset of the
API's work, so a ratio below 1 fails the run.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from bench.figures import Limit
from testkit.api_server import api_server

TOP_K = 10
SETTLE_S = 0.05  # pause before each timed call (outside the clock)
FIELDS = ["api_p50_ms", "api_p99_ms", "api_ratio"]
LIMITS = {"api_ratio": Limit(at_least=1.0, why="the raw encoder and the raw store search are a subset of the API's")}


def api_env(store_path: Path, collection: str, images_dir: Path, service_url: str) -> dict[str, str]:
    return {
        "QDRANT_PATH": str(store_path),
        "QDRANT_COLLECTION": collection,
        "IMAGES_DIR": str(images_dir),
        "EMBEDDING_SERVICE_URL": service_url,
        "REDIS_URL": "",
        "LOG_LEVEL": "WARNING",
    }


def api_times(env: dict[str, str], log_path: Path, texts: list[str], warm: list[str]) -> list[float]:
    """Milliseconds per text, after the ``warm`` texts (the connection, the process's first calls)."""
    with api_server(env, log_path) as url, httpx.Client(base_url=url, timeout=120) as client:

        def one(text: str) -> float:
            time.sleep(SETTLE_S)
            started = time.perf_counter()
            answer = client.get("/api/v1/search", params={"q": text, "limit": TOP_K})
            results = answer.raise_for_status().json()["results"]
            elapsed = (time.perf_counter() - started) * 1000
            if len(results) != TOP_K:
                raise RuntimeError(f"expected {TOP_K} results from the API, got {len(results)}")
            return elapsed

        for text in warm:
            one(text)
        return [one(text) for text in texts]


def api_figures(times: list[float], reference_p50_ms: float) -> dict[str, Any]:
    p50 = statistics.median(times)
    return {
        "api_p50_ms": round(p50, 1),
        "api_p99_ms": round(float(np.percentile(times, 99)), 1),
        "api_ratio": round(p50 / reference_p50_ms, 3),
    }
