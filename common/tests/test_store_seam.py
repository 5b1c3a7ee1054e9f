"""The store seam holds: only an engine's folder imports that engine's client, the neutral modules import
no engine, and callers get the store from the one factory.

Scans every Python file git knows (tracked or new) for imports, so a module anywhere in the repository that
reaches past the seam fails here, not in review.
"""

from __future__ import annotations

import ast
import functools
import subprocess
import sys

import pytest

from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

STORE = "common/src/dyimages_common/store/"
# Each engine's client, and where it may be imported: the engine's folder, plus what tests that engine from
# outside (the REST stand-in answers the server adapter; the payload-index check reads Qdrant's filter models).
CLIENTS = {
    "qdrant_client": (f"{STORE}qdrant/", "testkit/src/testkit/qdrant_rest.py", "common/tests/test_payload_indexes.py"),
    "qdrant_edge": (f"{STORE}edge/",),
}
NEUTRAL = ("types", "points", "errors", "protocol", "engine", "index", "writes", "builds")


@functools.cache
def _python_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard", "*.py"], cwd=REPO_ROOT, capture_output=True, text=True
    )
    return [path for path in listed.stdout.split() if (REPO_ROOT / path).is_file()]


@functools.cache
def imported(path: str) -> set[str]:
    """Every module name ``path`` imports (top-level and inside functions), fully dotted."""
    tree = ast.parse((REPO_ROOT / path).read_text(encoding="utf-8"), path)
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


def test_only_an_engines_folder_imports_its_client() -> None:
    files = _python_files()
    assert f"{STORE}edge/engine.py" in files
    outside = {
        (path, name)
        for path in files
        for client, allowed in CLIENTS.items()
        if not path.startswith(allowed)
        for name in imported(path)
        if name.split(".")[0] == client
    }
    assert outside == set()


def test_the_neutral_modules_import_no_engine() -> None:
    for module in NEUTRAL:
        names = imported(f"{STORE}{module}.py")
        engines = {
            n
            for n in names
            if n.split(".")[0] in CLIENTS
            or n.startswith(("dyimages_common.store.qdrant", "dyimages_common.store.edge"))
        }
        assert engines == set(), f"store/{module}.py imports {engines}"
    probe = (
        "import sys, dyimages_common.store.builds, dyimages_common.store.factory; "
        "print(sorted(m for m in sys.modules if m.startswith(('qdrant', 'httpx'))))"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.strip()
    assert loaded == "[]", f"importing the seam loaded {loaded}"


def test_callers_open_the_store_through_the_factory() -> None:
    """Nothing outside the store package picks an engine class by name: engines come from the factory (tests
    of the seam, and the benchmark's one engine option no setting names, may)."""
    reaching = {
        path
        for path in _python_files()
        if not path.startswith(
            (STORE, "common/tests/", "indexer/tests/test_store", "indexer/tests/test_shared_store_race")
        )
        and "/tests/" not in f"/{path}"
        and path != "bench/src/bench/vectorstore_sides.py"  # measures an engine option no setting names
        and {
            "dyimages_common.store.edge.engine.EdgeEngine",
            "dyimages_common.store.qdrant.engine.QdrantEngine",
        }
        & imported(path)
    }
    assert reaching == set()
