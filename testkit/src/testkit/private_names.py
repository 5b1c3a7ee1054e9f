"""Finding where a module reaches into a third-party package's private names (``_x``), by reading its source.

The compat-module tests (LitServe, Ray) use it: each package's internals are allowed in one module
only, so an upgrade of that package has one module to re-read.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

from testkit import REPO_ROOT

# Every Python file of the project (the services, their tests, the shared package, the helpers, the benchmarks).
SCANNED = ("embedding", "common", "testkit", "bench", "tests", "indexer", "app", "downloader", "demo")


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_uses(source: str, package: str) -> list[str]:
    """Each private name of ``package`` the source imports or reads as an attribute, as ``line: name``."""
    tree = ast.parse(source)
    bound: set[str] = set()  # local names that stand for a module or object of the package
    found: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == package:
                    bound.add(alias.asname or package)
                    found += [f"{node.lineno}: {alias.name}" for part in alias.name.split(".") if _private(part)]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == package:
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


def project_files(tops: Iterable[str] = SCANNED) -> list[Path]:
    return [
        path
        for top in tops
        for path in (REPO_ROOT / top).rglob("*.py")
        if ".venv" not in path.parts and "site-packages" not in path.parts
    ]


def offenders(package: str, allowed: Path) -> dict[str, list[str]]:
    """Project files other than ``allowed`` that use a private name of ``package``."""
    return {
        str(path.relative_to(REPO_ROOT)): uses
        for path in project_files()
        if path.resolve() != allowed and (uses := private_uses(path.read_text(), package))
    }
