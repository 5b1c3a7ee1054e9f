"""The service's modules stay small and import each other in one direction (no cycle, lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import embedding

pytestmark = pytest.mark.unit

PACKAGE = Path(embedding.__file__).resolve().parent
MAX_LINES = 250


def imports_of(source: str) -> set[str]:
    """The ``embedding.*`` modules a module imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("embedding"):
            found |= {f"embedding.{a.name}" for a in node.names} if node.module == "embedding" else {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("embedding.")}
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []

    def walk(path: list[str]) -> None:
        for nxt in sorted(graph.get(path[-1], ())):
            if nxt == path[0]:
                found.append([*path, nxt])
            elif nxt not in path and nxt > path[0]:  # each cycle once, from its smallest module
                walk([*path, nxt])

    for start in sorted(graph):
        walk([start])
    return found


def _graph() -> dict[str, set[str]]:
    return {f"embedding.{path.stem}": imports_of(path.read_text()) for path in PACKAGE.glob("*.py")}


def test_the_cycle_finder_finds_one() -> None:
    """Negative control: a lazy import back (as loop.py once had from api.py) is a cycle."""
    graph = {"embedding.api": {"embedding.loop"}, "embedding.loop": imports_of("def f():\n    import embedding.api")}
    assert cycles(graph) == [["embedding.api", "embedding.loop", "embedding.api"]]


def test_no_import_cycle() -> None:
    assert cycles(_graph()) == []


def test_no_module_over_the_size_limit() -> None:
    sizes = {path.name: len(path.read_text().splitlines()) for path in PACKAGE.glob("*.py")}
    assert {name: lines for name, lines in sizes.items() if lines > MAX_LINES} == {}
