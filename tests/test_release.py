"""A release a user can follow: one version for the whole workspace, read at run time, on every image we
build, with its entry in CHANGELOG.md, under the Apache-2.0 licence."""

from __future__ import annotations

import importlib.metadata
import re
import tomllib
from typing import Any

import pytest
import yaml

import dyimages_common
from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

ROOT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
MEMBERS = ROOT["tool"]["uv"]["workspace"]["members"]


def _project(member: str) -> dict[str, Any]:
    return tomllib.loads((REPO_ROOT / member / "pyproject.toml").read_text())["project"]


def test_every_member_carries_the_one_version_and_the_installed_code_reports_it() -> None:
    versions = {member: _project(member)["version"] for member in MEMBERS}
    assert len(set(versions.values())) == 1, versions
    version = dyimages_common.version()
    assert set(versions.values()) == {version}
    installed = {member: importlib.metadata.version(_project(member)["name"]) for member in MEMBERS}
    assert set(installed.values()) == {version}, "run uv sync: the venv holds another release"


def test_the_changelog_s_newest_entry_is_this_version() -> None:
    releases = re.findall(r"^## \[([^\]]+)\]", (REPO_ROOT / "CHANGELOG.md").read_text(), re.MULTILINE)
    assert releases, "CHANGELOG.md has no release heading"
    assert releases[0] == dyimages_common.version()
    assert len(releases) == len(set(releases)), "a release listed twice"


def test_every_image_compose_builds_is_tagged_with_the_version() -> None:
    version = dyimages_common.version()
    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    built = {name: service["image"] for name, service in compose["services"].items() if "build" in service}
    assert built == {name: f"dyimages-{name}:{version}" for name in built}
    assert {"app", "downloader", "indexer", "embedding", "embedding-export"} <= set(built)
    gpu = yaml.safe_load((REPO_ROOT / "docker-compose.gpu.yml").read_text())["services"]["embedding"]
    assert gpu["image"] == f"dyimages-embedding-gpu:{version}", "the GPU image must not take the CPU image's tag"
    # The Ray variants build other images (the ray extra; with torch on a GPU): tags of their own, one
    # per variant, shared by the head and its workers.
    for file, tag in (("docker-compose.ray.yml", "embedding-ray"), ("docker-compose.ray-gpu.yml", "embedding-ray-gpu")):
        services = yaml.safe_load((REPO_ROOT / file).read_text())["services"]
        assert {services[name]["image"] for name in ("embedding", "ray-worker")} == {f"dyimages-{tag}:{version}"}, file


def test_the_licence_is_apache_2_and_every_member_declares_it() -> None:
    text = (REPO_ROOT / "LICENSE").read_text()
    assert text.split()[:4] == ["Apache", "License", "Version", "2.0,"]
    assert "END OF TERMS AND CONDITIONS" in text
    assert {member: _project(member).get("license") for member in MEMBERS} == dict.fromkeys(MEMBERS, "Apache-2.0")
