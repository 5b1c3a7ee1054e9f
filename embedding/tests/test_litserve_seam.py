"""LitServe's internals are used in one module only, against the one version it was checked with.

``embedding.litserve_compat`` names the LitServe version its uses were read against. A LitServe
upgrade must fail here first (installed, pinned or locked version differs), and no other module
may reach into LitServe's private names, so that module is the whole list to re-read.
"""

from __future__ import annotations

import ast
import importlib.metadata
import tomllib
from pathlib import Path

import pytest

from embedding import litserve_compat
from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

COMPAT = Path(litserve_compat.__file__).resolve()
# Every Python file of the project (the service, its tests, the shared package, the helpers, the benchmarks).
SCANNED = ("embedding", "common", "testkit", "bench", "tests", "indexer", "app", "downloader")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_litserve_uses(source: str) -> list[str]:
    """Each private LitServe name the source imports or reads as an attribute, as ``line: name``."""
    tree = ast.parse(source)
    bound: set[str] = set()  # local names that stand for a LitServe module or object
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "litserve":
                    bound.add(alias.asname or "litserve")
                    found += [f"{node.lineno}: {alias.name}" for part in alias.name.split(".") if _private(part)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "litserve":
            module = node.module or ""
            if any(_private(part) for part in module.split(".")):
                found.append(f"{node.lineno}: {module}")
            for alias in node.names:
                bound.add(alias.asname or alias.name)
                if _private(alias.name):
                    found.append(f"{node.lineno}: {module}.{alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            root = node.value
            while isinstance(root, ast.Attribute):
                root = root.value
            if isinstance(root, ast.Name) and root.id in bound:
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


def _project_files() -> list[Path]:
    return [
        path
        for top in SCANNED
        for path in (REPO_ROOT / top).rglob("*.py")
        if ".venv" not in path.parts and "site-packages" not in path.parts
    ]


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
    files = _project_files()
    assert any(path.resolve() == COMPAT for path in files)
    offenders = {
        str(path.relative_to(REPO_ROOT)): uses
        for path in files
        if path.resolve() != COMPAT and (uses := private_litserve_uses(path.read_text()))
    }
    assert offenders == {}, f"move these into embedding/litserve_compat.py: {offenders}"


def test_the_installed_pinned_and_locked_litserve_is_the_checked_one() -> None:
    checked = litserve_compat.LITSERVE_VERSION
    assert importlib.metadata.version("litserve") == checked
    project = tomllib.loads((REPO_ROOT / "embedding" / "pyproject.toml").read_text())
    assert f"litserve=={checked}" in project["project"]["dependencies"]
    lock = tomllib.loads((REPO_ROOT / "uv.lock").read_text())
    assert [p["version"] for p in lock["package"] if p["name"] == "litserve"] == [checked]
