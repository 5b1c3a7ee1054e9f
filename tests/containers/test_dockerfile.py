"""Static checks of the one Dockerfile (run in the plain suite; tests/containers/stack_smoke.py builds
and runs it): one target per service on shared stages, the locked dependencies in their own layer,
one non-root user owning every folder a service writes, healthchecks left to docker-compose.yml."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

OUR_SERVICES = ("downloader", "indexer", "embedding", "app")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_our_services_build_from_one_dockerfile_one_target_each(compose: dict[str, Any]) -> None:
    python_version = (REPO_ROOT / ".python-version").read_text().strip()
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = {alias: base for base, alias in re.findall(r"^FROM (\S+) AS (\S+)$", dockerfile, flags=re.M)}
    for name in OUR_SERVICES:
        build = compose["services"][name]["build"]
        assert (REPO_ROOT / build["context"]).resolve() == REPO_ROOT, "services build from the repository root"
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert build["target"] == name
        assert stages[name] == "runtime", f"{name} is the shared non-root runtime plus its venv"
        assert stages[f"{name}-deps"] == "workspace"
        assert stages[f"{name}-venv"] == f"{name}-deps"
        assert f"COPY --from={name}-deps /app/.venv /app/.venv\nCOPY --from={name}-venv /layer/ /" in dockerfile, (
            "third-party dependencies and the service's code in separate layers"
        )
        assert f"uv-sync --no-install-workspace --package dyimages-{name}" in dockerfile, "dependencies layer first"
        assert f"uv-sync --no-editable --package dyimages-{name}" in dockerfile
    assert re.match(r"^3\.11(\.2)?$", python_version), "Debian 12's Python 3.11.2 must satisfy .python-version"
    assert f"python:{python_version}." in dockerfile, "the image runs the Python the tests run"
    assert "'uv sync --frozen --no-dev \"$@\"'" in dockerfile, "every install is from the lock file"
    assert dockerfile.count("--mount=type=cache") == 2 * len(OUR_SERVICES)
    runtime = dockerfile[dockerfile.index("AS runtime") :]
    users = re.findall(r"^USER (\S+)", runtime, flags=re.MULTILINE)
    assert users == ["dyimages"], "one non-root user, set once in the runtime stage"
    assert "--uid 10001" in runtime
    # Every folder a service writes (volumes, the embedded store) exists in the image, owned by it.
    for folder in ("/data/images", "/data/urls", "/data/qdrant", "/models"):
        assert folder in runtime.split("chown")[1].split("\n")[0], f"{folder} not owned by the service user"
    # Healthchecks are defined once: in docker-compose.yml, not in the image.
    assert "HEALTHCHECK" not in dockerfile


def test_one_python_version_and_one_dockerfile_for_the_workspace() -> None:
    for member in ("common", *OUR_SERVICES):
        assert not (REPO_ROOT / member / ".python-version").exists(), "one .python-version, at the root"
        assert not (REPO_ROOT / member / "Dockerfile").exists(), "one Dockerfile, at the root"


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for needed in (".python-version", "uv.lock", "pyproject.toml", "common", *OUR_SERVICES):
        assert needed not in ignored
    assert "downloader/image_urls.txt" in ignored, "editing the URL list must not rebuild the downloader"
