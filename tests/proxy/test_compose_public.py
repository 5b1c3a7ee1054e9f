"""The compose side of going public: the proxy under the `public` profile and the Redis query cache.
Which services publish the UI under each profile is tests/test_compose.py's (and, with the real
compose CLI, the container smoke's).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

COMPOSE = REPO_ROOT / "docker-compose.yml"


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def test_proxy_service_runs_the_entrypoint_unprivileged_read_only_and_waits_for_the_app() -> None:
    proxy = load(COMPOSE)["services"]["proxy"]
    assert proxy["profiles"] == ["public"]
    assert proxy["entrypoint"] == ["/bin/sh", "/etc/dyimages/proxy/entrypoint.sh"]
    assert "./deploy/proxy:/etc/dyimages/proxy:ro" in proxy["volumes"]
    assert proxy["user"] not in {"0", "root"}
    assert not str(proxy["user"]).startswith("0:")
    assert proxy["read_only"] is True
    healthy = {"condition": "service_healthy"}
    assert proxy["depends_on"] == {"app": healthy, "api": healthy}  # it serves both: the UI and /api/
    assert proxy["environment"]["PROXY_UPSTREAM"] == "app:8501"
    assert proxy["environment"]["PROXY_API_UPSTREAM"] == "api:8502"
    # Required only by the proxy itself (compose without the profile must not ask for it).
    assert proxy["environment"]["PROXY_PASSWORD"] == "${PROXY_PASSWORD:-}"
    assert proxy["environment"]["MAX_IMAGE_BYTES"] == "${MAX_IMAGE_BYTES:-52428800}"
    assert "/healthz" in " ".join(proxy["healthcheck"]["test"])
    entrypoint = (REPO_ROOT / "deploy" / "proxy" / "entrypoint.sh").read_text()
    for variable in proxy["environment"]:
        assert f"{variable}" in entrypoint, f"compose sets {variable}, which the entrypoint does not read"


def test_redis_is_a_bounded_lru_cache_the_app_uses() -> None:
    compose = load(COMPOSE)
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--maxmemory-policy") + 1] == "allkeys-lru"
    assert command[command.index("--maxmemory") + 1] == "${REDIS_MAXMEMORY:-256mb}"
    assert redis["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert "redis-data:/data" in redis["volumes"]
    assert "ports" not in redis  # the private network only
    app = compose["services"]["app"]
    assert app["environment"]["REDIS_URL"] == "${REDIS_URL:-redis://redis:6379/0}"
    assert app["depends_on"]["redis"] == {"condition": "service_healthy"}
