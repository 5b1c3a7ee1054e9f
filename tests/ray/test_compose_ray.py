"""The Ray tier's compose overrides, read as compose reads them (no Docker engine runs here).

``docker-compose.ray.yml`` turns the ``embedding`` service into the Ray head (the Serve proxy on the
same port, so the indexer and the app keep their URL) and adds ``ray-worker`` nodes that join it;
``docker-compose.ray-gpu.yml`` gives each worker a GPU and each replica ``num_gpus``. The container
smoke runs the CPU variant with two workers and two indexers; here the files are checked against the
Compose specification and for what scaling needs.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from embedding.ray_serve.settings import RaySettings
from testkit import REPO_ROOT
from testkit.compose import COMPOSE, DUMMY_DOTENV, rendered

pytestmark = pytest.mark.unit

RAY = REPO_ROOT / "docker-compose.ray.yml"
RAY_GPU = REPO_ROOT / "docker-compose.ray-gpu.yml"
SCALED = ("ray-worker", "indexer")  # what the README scales with --scale


def _services(*files: Path) -> dict[str, Any]:
    return rendered({**DUMMY_DOTENV, "COMPOSE_PROFILES": "direct"}, (COMPOSE, *files))[0]


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else command


def test_the_overrides_match_the_compose_specification() -> None:
    check = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(RAY), str(RAY_GPU)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_embedding_service_becomes_the_ray_head_and_workers_join_it() -> None:
    services = _services(RAY)
    head, worker = services["embedding"], services["ray-worker"]
    assert _command(head)[:4] == ["python", "-m", "embedding.ray_serve", "head"]
    assert _command(head)[_command(head).index("--num-cpus") + 1] == "0"  # replicas run on the workers only
    assert "--address=embedding:6379" in _command(worker)
    assert head["build"]["args"]["EXTRAS"] == worker["build"]["args"]["EXTRAS"] == "ray"
    # The replicas read stored images and the exported model on the workers: the same volumes.
    assert "images:/data/images:ro" in worker["volumes"]
    assert "model-cache:/models" in worker["volumes"]
    # The head's settings travel with the deployment (PHOTOS_DIR=/data/photos): the folder is mounted there.
    assert head["environment"]["PHOTOS_DIR"] == "/data/photos"
    assert any(str(volume).endswith(":/data/photos:ro") for volume in worker["volumes"]), worker["volumes"]
    assert worker["environment"]["MALLOC_ARENA_MAX"] == "2"  # the replicas decode here
    # The clients keep their URL: the head's Serve proxy answers where LitServe did.
    for client in ("indexer", "app"):
        assert services[client]["environment"]["EMBEDDING_SERVICE_URL"] == "http://embedding:8000"
    settings = RaySettings(**{key.lower(): value for key, value in head["environment"].items() if value != ""})
    assert (settings.embedding_port, settings.embedding_host) == (8000, "0.0.0.0")
    assert settings.embedding_ray_min_replicas <= settings.embedding_ray_max_replicas


def test_what_scales_has_no_container_name_and_no_host_port() -> None:
    """`--scale indexer=3` and `--scale ray-worker=N` need replicas compose can name and place apart."""
    for files in ((), (RAY,), (RAY, RAY_GPU)):
        services = _services(*files)
        for name in SCALED:
            if name in services:
                assert "container_name" not in services[name], name
                assert not services[name].get("ports"), name


def test_gpu_replicas_ask_ray_for_a_gpu_on_workers_that_reserve_one() -> None:
    services = _services(RAY, RAY_GPU)
    head, worker = services["embedding"], services["ray-worker"]
    assert float(head["environment"]["EMBEDDING_RAY_REPLICA_GPUS"]) >= 1
    assert head["environment"]["DEVICE"] == "cuda"
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["capabilities"] == ["gpu"]
    assert "torch" in worker["build"]["args"]["EXTRAS"].split()
