"""The environment the tests run in is the one the images install: uv.lock, synced by scripts/test.

scripts/test installs with `uv sync --frozen` (every member, every extra, the dev group) using the uv
version pyproject.toml requires; the Dockerfile syncs the same lock with the same uv. These tests fail
when the running environment drifts from the lock (a `pip install` on top, a stale venv), when the uv
versions part, and when pytest's importlib mode hides a service package behind its folder again.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from packaging.markers import Marker
from packaging.utils import canonicalize_name

from testkit import REPO_ROOT

ROOT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
LOCK = tomllib.loads((REPO_ROOT / "uv.lock").read_text())


def _installed() -> dict[str, str]:
    return {canonicalize_name(d.metadata["Name"]): d.version for d in importlib.metadata.distributions()}


def _applies(dependency: dict[str, Any]) -> bool:
    return "marker" not in dependency or Marker(dependency["marker"]).evaluate()


def test_every_installed_package_is_locked_at_the_version_installed() -> None:
    locked = {canonicalize_name(p["name"]): p["version"] for p in LOCK["package"] if "version" in p}
    installed = _installed()
    assert {n: v for n, v in installed.items() if n in locked and locked[n] != v} == {}, "not the locked version"
    assert set(installed) - set(locked) == set(), "installed but not in uv.lock"


def test_every_member_with_all_its_extras_and_the_dev_group_is_installed() -> None:
    members = {canonicalize_name(m) for m in LOCK["manifest"]["members"]}
    packages = {canonicalize_name(p["name"]): p for p in LOCK["package"]}
    wanted = set(members)
    for member in members:
        for extra in packages[member].get("optional-dependencies", {}).values():
            wanted |= {canonicalize_name(d["name"]) for d in extra if _applies(d)}
    wanted |= {canonicalize_name(d["name"]) for d in LOCK["manifest"]["dependency-groups"]["dev"] if _applies(d)}
    assert wanted - set(_installed()) == set()


def test_ci_and_the_images_use_the_uv_version_pyproject_requires() -> None:
    required = ROOT["tool"]["uv"]["required-version"]
    assert re.fullmatch(r"==\d+\.\d+\.\d+", required), "one exact uv version"
    image = f"ghcr.io/astral-sh/uv:{required.removeprefix('==')}"
    assert f"ARG UV_IMAGE={image}\n" in (REPO_ROOT / "Dockerfile").read_text()
    assert f"UV_STANDIN={image}\n" in (REPO_ROOT / "scripts/lib/standin-images.sh").read_text()
    assert "required-version" in (REPO_ROOT / "scripts/test").read_text(), "scripts/test installs that version"


def test_the_test_helpers_are_a_member_in_no_image() -> None:
    assert "testkit" in ROOT["tool"]["uv"]["workspace"]["members"]
    assert "testkit" in (REPO_ROOT / ".dockerignore").read_text().split()
    assert importlib.metadata.distribution("dyimages-testkit").version == importlib.metadata.version("dyimages-common")


def test_nothing_is_importable_only_because_the_repository_root_is_on_sys_path(tmp_path: Path) -> None:
    """testkit, the demo and the benchmarks are installed members like the services: from any folder they
    import from their own src/, and no .pth puts the repository root on sys.path."""
    code = "import bench.soak.run, demo.record, testkit.licences, downloader, json, sys; print(json.dumps(sys.path))"
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert str(REPO_ROOT) not in json.loads(result.stdout)
    for name in ("bench", "demo", "testkit"):
        assert importlib.util.find_spec(name).origin == str(REPO_ROOT / name / "src" / name / "__init__.py")


def test_a_service_s_tests_import_the_installed_package_not_its_folder() -> None:
    """downloader/tests/conftest.py imports `downloader.settings`: collecting it fails when pytest
    registers the folder downloader/ as the package `downloader` (tool.pytest consider_namespace_packages)."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "downloader/tests"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
