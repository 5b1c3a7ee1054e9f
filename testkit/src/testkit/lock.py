"""What uv.lock installs: the closure of one workspace package and its extras, as ``uv sync --package``
resolves it (the images' venvs, the licences check)."""

from __future__ import annotations

import functools
import tomllib
from typing import Any

from packaging.markers import Marker

from testkit import REPO_ROOT


@functools.cache
def locked() -> dict[str, dict[str, Any]]:
    """uv.lock's packages by name."""
    return {entry["name"]: entry for entry in tomllib.loads((REPO_ROOT / "uv.lock").read_text())["package"]}


def closure(package: str, extras: tuple[str, ...] = (), *, every_platform: bool = False) -> set[str]:
    """What ``uv sync --frozen --no-dev --package PACKAGE --extra ...`` installs: for this Python and platform
    (markers evaluated), or with ``every_platform`` the union over all of them (markers ignored)."""
    entries = locked()
    seen: set[str] = set()
    todo = [(package, extras)]
    while todo:
        name, wanted = todo.pop()
        if name in seen and not wanted:
            continue
        seen.add(name)
        dependencies = [*entries[name].get("dependencies", [])]
        for extra in wanted:
            dependencies += entries[name].get("optional-dependencies", {})[extra]
        for dependency in dependencies:
            if every_platform or "marker" not in dependency or Marker(dependency["marker"]).evaluate():
                todo.append((dependency["name"], tuple(dependency.get("extra", ()))))
    return seen
