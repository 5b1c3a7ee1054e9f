"""The compose side of going public: the proxy under the `public` profile, the app unpublished by
docker-compose.public.yml, and the Redis query cache. Checked with `docker compose config` where
the compose binary exists; always with the files themselves (the Compose schema and their content).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

COMPOSE = REPO_ROOT / "docker-compose.yml"
PUBLIC = REPO_ROOT / "docker-compose.public.yml"
DOTENV = {"RABBITMQ_PASSWORD": "a-real-secret", "QDRANT_API_KEY": "another-secret", "PROXY_PASSWORD": "x" * 24}


class _Reset:
    """Compose's ``!reset`` tag: the key goes back to empty when the file is merged."""


class _ComposeLoader(yaml.SafeLoader):
    pass


_ComposeLoader.add_constructor("!reset", lambda loader, node: _Reset())


def load(path: Path) -> dict[str, Any]:
    return yaml.load(path.read_text(), Loader=_ComposeLoader)


def merged_public() -> dict[str, Any]:
    """docker-compose.yml with docker-compose.public.yml over it (only ``!reset`` keys are used there)."""
    base, override = load(COMPOSE), load(PUBLIC)
    for name, service in override["services"].items():
        for key, value in service.items():
            assert isinstance(value, _Reset), f"{name}.{key}: the public file only takes things away"
            base["services"][name].pop(key, None)
    return base


def test_public_override_unpublishes_the_app_and_the_result_matches_the_schema(tmp_path: Path) -> None:
    merged = merged_public()
    assert "ports" not in merged["services"]["app"]
    assert "ports" in load(COMPOSE)["services"]["app"]  # without it the app is published as before
    published = {name for name, service in merged["services"].items() if service.get("ports")}
    assert "proxy" in published
    assert "app" not in published
    (tmp_path / "merged.yml").write_text(yaml.safe_dump(merged))
    check = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(tmp_path / "merged.yml")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_docker_compose_config_when_the_compose_binary_is_there() -> None:
    """With the Compose CLI (not on every test machine): the real merge, profile on."""
    docker = shutil.which("docker")
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, check=False) if docker else None
    if probe is None or probe.returncode != 0:
        merged = merged_public()  # the same assertions on this test's own merge
    else:
        result = subprocess.run(
            [
                docker,
                "compose",
                "-f",
                str(COMPOSE),
                "-f",
                str(PUBLIC),
                "--profile",
                "public",
                "config",
                "--format",
                "json",
            ],
            capture_output=True,
            text=True,
            check=True,
            env={"PATH": "/usr/bin:/bin:/usr/local/bin", **DOTENV},
            cwd=REPO_ROOT,
        )
        merged = json.loads(result.stdout)
    assert not merged["services"]["app"].get("ports")
    assert merged["services"]["proxy"]["ports"]


def test_proxy_service_runs_the_entrypoint_unprivileged_read_only_and_waits_for_the_app() -> None:
    proxy = load(COMPOSE)["services"]["proxy"]
    assert proxy["profiles"] == ["public"]
    assert proxy["entrypoint"] == ["/bin/sh", "/etc/dyimages/proxy/entrypoint.sh"]
    assert "./deploy/proxy:/etc/dyimages/proxy:ro" in proxy["volumes"]
    assert proxy["user"] not in {"0", "root"}
    assert not str(proxy["user"]).startswith("0:")
    assert proxy["read_only"] is True
    assert proxy["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert proxy["environment"]["PROXY_UPSTREAM"] == "app:8501"
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
