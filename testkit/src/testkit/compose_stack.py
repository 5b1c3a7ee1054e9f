"""A docker compose stack driven from a test: the container smoke's hands (tests/containers/stack_smoke.py).

:class:`Stack` runs ``docker compose`` on a copy of the repository with the smoke's override, with only the
settings ``.env`` gives (none of this process's), waits for health, reads metrics inside containers and
runs the CLI in the app container. Each check of the smoke is a test function there; what it needs from
the stack belongs here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from skimage import data as skimage_data

from dyimages_common import version

PROJECT = "dyimages-smoke"
SUBNET = "172.30.77.0/24"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
# scikit-image's sample photos (real photographs, in the venv), by loader name.
PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "camera")
SECRET_NAMES = re.compile(r"^(RABBITMQ|QDRANT|GRAFANA|MODEL|DOWNLOADER|LOG|APP|EMBEDDING|INDEXER|COMPOSE|PROXY)_")


def image_of(service: str) -> str:
    """The tag of the image compose builds for ``service``: it carries the release (docker-compose.yml)."""
    return f"dyimages-{service}:{version()}"


def _env(photos: Path) -> dict[str, str]:
    """This process's environment minus the stack's settings (only .env may set those), plus the
    override's inputs."""
    env = {key: value for key, value in os.environ.items() if not SECRET_NAMES.match(key)}
    env.update(
        SMOKE_PHOTOS=str(photos),
        SMOKE_SUBNET=SUBNET,
        SMOKE_CA_BUNDLE=str(CA_BUNDLE),
        SMOKE_PYTHON_IMAGE=os.environ.get("SMOKE_PYTHON_IMAGE", ""),
    )
    return env


class Stack:
    """``docker compose`` on the copy of the repository ``repo``, with or without the smoke override;
    ``running`` are the services a plain ``up`` waits for."""

    def __init__(self, repo: Path, override: Path, photos: Path, running: tuple[str, ...]) -> None:
        self.repo, self.override, self.photos, self.running = repo, override, photos, running
        self.env = _env(photos)

    def compose(
        self,
        *args: str,
        files: tuple[str, ...] | None = None,
        check: bool = True,
        timeout: float = 900,
    ) -> subprocess.CompletedProcess[str]:
        command = ["docker", "compose", "--project-directory", str(self.repo), "-p", PROJECT]
        for file in files or ("docker-compose.yml", str(self.override)):
            command += ["-f", file]
        result = subprocess.run(
            [*command, *args], cwd=self.repo, env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            logs = self.compose("logs", "--tail=25", check=False).stdout if "up" in args or "start" in args else ""
            pytest.fail(f"docker compose {' '.join(args)} -> {result.returncode}\n{result.stderr[-3000:]}\n{logs}")
        return result

    def docker(self, *args: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            pytest.fail(f"docker {' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result

    def exec(self, service: str, *command: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return self.compose("exec", "-T", service, *command, check=check)

    def containers(self) -> list[dict[str, Any]]:
        out = self.compose("ps", "--all", "--format", "json").stdout.strip()
        rows = json.loads(out) if out.startswith("[") else [json.loads(line) for line in out.splitlines() if line]
        return rows

    def published(self) -> dict[str, set[int]]:
        """Host ports each running container publishes, by service."""
        return {
            row["Service"]: {p["PublishedPort"] for p in row.get("Publishers") or [] if p.get("PublishedPort")}
            for row in self.containers()
            if row["State"] == "running"
        }

    def up(self, *up_args: str, services: tuple[str, ...] | None = None) -> None:
        """``up -d`` then every service in ``services`` healthy and the export job exited 0. Not
        ``--wait``: some Compose versions exit 1 for a one-shot dependency that completed
        (docker/compose#10596)."""
        self.compose("up", "-d", *up_args, timeout=1200)
        self.wait_healthy(services or self.running)
        export = [row for row in self.containers() if row["Service"] == "embedding-export"]
        assert export, "the embedding-export job ran"
        assert export[0]["State"] == "exited", export[0]
        assert export[0]["ExitCode"] == 0, self.compose("logs", "embedding-export").stdout[-3000:]

    def wait_healthy(self, services: tuple[str, ...], timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while True:
            state = {row["Service"]: (row["State"], row.get("Health", "")) for row in self.containers()}
            if all(state.get(name) == ("running", "healthy") for name in services):
                return
            if time.monotonic() > deadline:
                pytest.fail(f"not healthy after {timeout} s: {state}\n{self.compose('logs', '--tail=30').stdout}")
            time.sleep(2)

    def metric(self, service: str, port: int, name: str) -> float:
        """A counter's value, read from inside the service's container (the port is not published)."""
        script = (
            "import urllib.request, sys\n"
            f"body = urllib.request.urlopen('http://127.0.0.1:{port}/metrics', timeout=5).read().decode()\n"
            f"print(sum(float(l.split()[-1]) for l in body.splitlines() if l.startswith('{name}')))"
        )
        result = self.exec(service, "python", "-c", script, check=False)
        return float(result.stdout.strip()) if result.returncode == 0 and result.stdout.strip() else -1.0

    def search_image(self, photo: str) -> dict[str, Any]:
        """``dyimages search --image`` inside the app container (the indexer must be stopped: the
        embedded store admits one process at a time)."""
        self.compose("cp", str(self.photos / f"{photo}.jpg"), f"app:/tmp/{photo}.jpg")
        result = self.exec("app", "dyimages", "search", "--image", f"/tmp/{photo}.jpg", "--top-k", "100", "--json")
        return json.loads(result.stdout)


def write_photos(folder: Path) -> None:
    """The smoke's photos as JPEGs in ``folder``, readable by the containers' users."""
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    folder.chmod(0o755)
    for name in PHOTOS:
        pixels = getattr(skimage_data, name)()
        image = Image.fromarray(pixels).convert("RGB")
        path = folder / f"{name}.jpg"
        image.save(path, "JPEG", quality=90)
        path.chmod(0o644)
