"""LitServe's internals are used in one module only, against the one version it was checked with.

``embedding.litserve_compat`` names the LitServe version its uses were read against. A LitServe
upgrade must fail here first (installed, pinned or locked version differs), and no other module
may reach into LitServe's private names, so that module is the whole list to re-read.
"""

from __future__ import annotations

import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from embedding import litserve_compat
from testkit import REPO_ROOT
from testkit.private_names import offenders, private_uses, project_files

pytestmark = pytest.mark.unit

COMPAT = Path(litserve_compat.__file__).resolve()


def private_litserve_uses(source: str) -> list[str]:
    """Each private LitServe name the source imports or reads as an attribute, as ``line: name``."""
    return private_uses(source, "litserve")


def test_the_scanner_sees_each_kind_of_private_use() -> None:
    """Negative controls: each way of reaching a private name is reported, public names are not."""
    cases = {
        "from litserve.loops.base import _SENTINEL_VALUE": 1,
        "from litserve.loops import base\nbase._SENTINEL_VALUE": 1,
        "import litserve.server\nlitserve.server._x = 1": 1,
        "import litserve as ls\nls.server._y()": 1,
        "from litserve import _private_module": 1,
        "from litserve._private import thing": 1,
        "from litserve.loops.base import LitLoop\nLitLoop._restart": 1,
        "import litserve as ls\nfrom litserve.utils import LitAPIStatus\nls.LitAPI\nls.__version__\nLitAPIStatus.OK": 0,
        "import other\nother._private": 0,
    }
    for source, count in cases.items():
        assert len(private_litserve_uses(source)) == count, source
    assert private_litserve_uses(COMPAT.read_text()), "the compat module itself uses a private name"


def test_no_module_but_the_compat_module_uses_a_private_litserve_name() -> None:
    assert any(path.resolve() == COMPAT for path in project_files())
    found = offenders("litserve", COMPAT)
    assert found == {}, f"move these into embedding/litserve_compat.py: {found}"


def test_the_installed_pinned_and_locked_litserve_is_the_checked_one() -> None:
    checked = litserve_compat.LITSERVE_VERSION
    assert importlib.metadata.version("litserve") == checked
    project = tomllib.loads((REPO_ROOT / "embedding" / "pyproject.toml").read_text())
    assert f"litserve=={checked}" in project["project"]["dependencies"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    assert [p["version"] for p in lock["package"] if p["name"] == "litserve"] == [checked]
