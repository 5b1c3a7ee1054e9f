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
from packaging.specifiers import SpecifierSet

from testkit import REPO_ROOT
from testkit.lock import closure

pytestmark = pytest.mark.unit

OUR_SERVICES = ("downloader", "indexer", "embedding", "app")
# What the CPU embedding image must not install (PyTorch and what only it brings: CUDA, Triton).
TORCH_PACKAGES = re.compile(r"^(torch|torchvision|open-clip-torch|onnx|triton|nvidia-.*)$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())


def test_our_services_build_from_one_dockerfile_one_target_each(compose: dict[str, Any]) -> None:
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
    assert "UV_PYTHON=/usr/local/bin/python3" in dockerfile, "uv uses the image's Python, whatever a pin says"
    runtime = dockerfile[dockerfile.index("AS runtime") :]
    users = re.findall(r"^USER (\S+)", runtime, flags=re.MULTILINE)
    assert users == ["dyimages"], "one non-root user, set once in the runtime stage"
    assert "--uid 10001" in runtime
    # Every folder a service writes (volumes, the embedded store) exists in the image, owned by it.
    for folder in ("/data/images", "/data/urls", "/data/qdrant", "/models"):
        assert folder in runtime.split("chown")[1].split("\n")[0], f"{folder} not owned by the service user"
    # Healthchecks are defined once: in docker-compose.yml, not in the image.
    assert "HEALTHCHECK" not in dockerfile


def test_the_cpu_embedding_image_installs_no_pytorch_and_the_export_image_does() -> None:
    serving = closure("dyimages-embedding", every_platform=True)
    assert {"onnxruntime", "litserve", "pillow"} <= serving
    assert sorted(p for p in serving if TORCH_PACKAGES.match(p)) == []
    export = closure("dyimages-embedding", ("torch",), every_platform=True)
    assert {"torch", "torchvision", "open-clip-torch", "onnx"} <= export


def _requires_python(member: str) -> SpecifierSet:
    project = tomllib.loads((REPO_ROOT / member / "pyproject.toml").read_text())["project"]
    return SpecifierSet(project["requires-python"])


def test_the_images_run_debian_13_s_python_which_every_member_admits_with_3_11() -> None:
    """The plan's Python for the images is 3.13 (Debian 13); the test command runs on Debian 12's 3.11 too."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    image = re.search(r"^ARG PYTHON_IMAGE=(python:(\d+\.\d+)\.\d+-slim-(\w+))$", dockerfile, re.M)
    assert image is not None
    assert image.groups()[1:] == ("3.13", "trixie")
    standins = (REPO_ROOT / "scripts/lib/standin-images.sh").read_text()
    assert f"\nPYTHON_STANDIN={image[1]} " in standins, "the smoke's stand-in has the tag the Dockerfile names"
    assert "\nSTANDIN_SUITE=trixie\nSTANDIN_PYTHON=python3.13\n" in standins
    members = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    for member in members:
        admits = _requires_python(member)
        wanted = ["3.11.2", "3.12.0", "3.13.5", "3.13.15"]  # Debian 12's, any 3.12, Debian 13's, the image's
        assert list(admits.filter(wanted)) == wanted
        assert "3.14.0" not in admits, f"{member}: 3.14 is not verified (no interpreter to test it with)"
    assert not (REPO_ROOT / ".python-version").exists(), "requires-python says the range; a pin would pick one"


def test_one_dockerfile_for_the_workspace() -> None:
    for member in ("common", *OUR_SERVICES):
        assert not (REPO_ROOT / member / ".python-version").exists()
        assert not (REPO_ROOT / member / "Dockerfile").exists(), "one Dockerfile, at the root"


def test_the_build_context_keeps_what_the_dockerfile_copies() -> None:
    ignored = (REPO_ROOT / ".dockerignore").read_text().split()
    for needed in ("uv.lock", "pyproject.toml", "common", *OUR_SERVICES):
        assert needed not in ignored
    assert "downloader/image_urls.txt" in ignored, "editing the URL list must not rebuild the downloader"
