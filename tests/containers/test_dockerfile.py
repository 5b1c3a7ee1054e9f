"""Static checks of the one Dockerfile (run in the plain suite; tests/containers/stack_smoke.py builds
and runs it): one pipeline of shared stages that the workspace member picks (MEMBER), one small
target per service on top, the locked dependencies in their own layer, one non-root user owning every
folder a service writes, healthchecks left to docker-compose.yml, and no PyTorch in the embedding
service's CPU image."""

from __future__ import annotations

import re
import tomllib
from typing import Any

import pytest
import yaml

from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

OUR_SERVICES = ("downloader", "indexer", "embedding", "app")
# What the CPU embedding image must not install (PyTorch and what only it brings: CUDA, Triton).
TORCH_PACKAGES = re.compile(r"^(torch|torchvision|open-clip-torch|onnx|triton|nvidia-.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_our_services_build_from_one_dockerfile_one_target_each(compose: dict[str, Any]) -> None:
    python_version = (REPO_ROOT / ".python-version").read_text().strip()
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    stages = {alias: base for base, alias in re.findall(r"^FROM (\S+) AS (\S+)$", dockerfile, flags=re.M)}
    assert (stages["deps"], stages["venv"], stages["service"]) == ("workspace", "deps", "runtime")
    for name in OUR_SERVICES:
        build = compose["services"][name]["build"]
        assert (REPO_ROOT / build["context"]).resolve() == REPO_ROOT, "services build from the repository root"
        assert build.get("dockerfile", "Dockerfile") == "Dockerfile"
        assert build["target"] == name
        assert build["args"]["MEMBER"] == name, "the member the shared stages install"
        assert stages[name] == "service", f"{name} is the shared non-root runtime plus its venv"
        member = tomllib.loads((REPO_ROOT / name / "pyproject.toml").read_text())["project"]["name"]
        assert member == f"dyimages-{name}", "uv-sync installs dyimages-$MEMBER"
        assert f"COPY {name}/pyproject.toml {name}/" in dockerfile, "uv checks the whole workspace"
    # One pipeline, written once: the third-party layer, then the code layer.
    assert "COPY --from=deps /app/.venv /app/.venv\nCOPY --from=venv /layer/ /" in dockerfile
    assert dockerfile.count("COPY --from=") == 3  # uv, and the two layers
    assert "uv-sync --no-install-workspace\n" in dockerfile, "dependencies layer first"
    assert "uv-sync --no-editable\n" in dockerfile
    assert '\'uv sync --frozen --no-dev --package "dyimages-$MEMBER" $extras "$@"\'' in dockerfile
    assert dockerfile.count("--mount=type=cache") == 2
    assert re.match(r"^3\.11(\.2)?$", python_version), "Debian 12's Python 3.11.2 must satisfy .python-version"
    assert f"python:{python_version}." in dockerfile, "the image runs the Python the tests run"
    runtime = dockerfile[dockerfile.index("AS runtime") :]
    users = re.findall(r"^USER (\S+)", runtime, flags=re.MULTILINE)
    assert users == ["dyimages"], "one non-root user, set once in the runtime stage"
    assert "--uid 10001" in runtime
    # Every folder a service writes (volumes, the embedded store) exists in the image, owned by it.
    for folder in ("/data/images", "/data/urls", "/data/qdrant", "/models"):
        assert folder in runtime.split("chown")[1].split("\n")[0], f"{folder} not owned by the service user"
    # Healthchecks are defined once: in docker-compose.yml, not in the image.
    assert "HEALTHCHECK" not in dockerfile


def _locked_closure(package: str, extras: tuple[str, ...] = ()) -> set[str]:
    """Every package `uv sync --frozen --no-dev --package PACKAGE [--extra ...]` installs, from uv.lock
    (markers ignored: a superset of what one platform gets)."""
    locked = {entry["name"]: entry for entry in tomllib.loads((REPO_ROOT / "uv.lock").read_text())["package"]}
    seen: set[str] = set()
    todo = [(package, extras)]
    while todo:
        name, wanted = todo.pop()
        entry = locked[name]
        dependencies = list(entry.get("dependencies", []))
        for extra in wanted:
            dependencies += entry.get("optional-dependencies", {})[extra]
        if name in seen and not wanted:
            continue
        seen.add(name)
        todo += [(dep["name"], tuple(dep.get("extra", ()))) for dep in dependencies]
    return seen


def test_the_cpu_embedding_image_installs_no_pytorch_and_the_export_image_does() -> None:
    serving = _locked_closure("dyimages-embedding")
    assert {"onnxruntime", "litserve", "pillow"} <= serving
    assert sorted(p for p in serving if TORCH_PACKAGES.match(p)) == []
    export = _locked_closure("dyimages-embedding", ("torch",))
    assert {"torch", "torchvision", "open-clip-torch", "onnx"} <= export


def test_one_python_version_and_one_dockerfile_for_the_workspace() -> None:
    for member in ("common", *OUR_SERVICES):
        assert not (REPO_ROOT / member / ".python-version").exists(), "one .python-version, at the root"
        assert not (REPO_ROOT / member / "Dockerfile").exists(), "one Dockerfile, at the root"


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for needed in (".python-version", "uv.lock", "pyproject.toml", "common", *OUR_SERVICES):
        assert needed not in ignored
    assert "downloader/image_urls.txt" in ignored, "editing the URL list must not rebuild the downloader"
