"""Ray's internals are used in one module only, against the one version it was checked with.

``embedding.ray_serve.compat`` names the Ray version its uses were read against. A Ray upgrade must
fail here first (installed, pinned or locked version differs), and no other module may reach into
Ray's private names, so that module is the whole list to re-read.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from embedding.ray_serve import compat
from testkit import REPO_ROOT
from testkit.private_names import offenders, private_uses, project_files

pytestmark = pytest.mark.unit

COMPAT = Path(compat.__file__).resolve()


def test_the_scanner_sees_a_private_ray_name_and_not_a_public_one() -> None:
    """Negative controls for Ray's names: private ones are reported, public ones are not."""
    assert private_uses("from ray._private.services import resolve_ip_for_localhost", "ray")
    assert private_uses("import ray\nray._private.worker", "ray")
    assert private_uses("from ray.serve import _private", "ray")
    assert not private_uses("from ray import serve\nserve.batch\nserve.get_replica_context()", "ray")
    assert private_uses(COMPAT.read_text(), "ray"), "the compat module itself uses a private name"


def test_no_module_but_the_compat_module_uses_a_private_ray_name() -> None:
    assert any(path.resolve() == COMPAT for path in project_files())
    assert offenders("ray", COMPAT) == {}, "move these into embedding/ray_serve/compat.py"


def test_the_installed_pinned_and_locked_ray_is_the_checked_one() -> None:
    checked = compat.RAY_VERSION
    assert importlib.metadata.version("ray") == checked
    project = tomllib.loads((REPO_ROOT / "embedding" / "pyproject.toml").read_text())
    assert f"ray[serve]=={checked}" in project["project"]["optional-dependencies"]["ray"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    assert [p["version"] for p in lock["package"] if p["name"] == "ray"] == [checked]


def test_ray_replaces_the_usual_loopback_address_and_keeps_the_ones_the_tests_use() -> None:
    """Why the test cluster's nodes are 127.0.0.2, .3, ...: Ray swaps 127.0.0.1 for an outside address."""
    assert not compat.ray_keeps_node_ip("127.0.0.1")
    assert all(compat.ray_keeps_node_ip(compat.loopback_node_ip(node)) for node in range(4))
