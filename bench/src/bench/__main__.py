"""Run one benchmark: ``python -m bench NAME [--quick] [options]``.

Each benchmark is a module ``bench.NAME`` (or a package whose ``run`` module it is, as
``bench.soak``) with ``run(argv: list[str]) -> dict``, ``REQUIRED`` (the
fields its line must carry) and optionally ``LIMITS`` (reference ratios and where they become
impossible; :mod:`bench.figures`). Its figures, with where they were measured (command, load, CPU
count, versions, ``machine``: quiet or loaded), are printed as one JSON object on the last line of
output. A line with a required field missing or null, a number that is not finite or a ratio past
its limit is still printed (non-finite numbers as null, the reasons under ``invalid``), and the
exit status is 1: an invalid run fails. Run from the repository root.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from bench.figures import MachineWatch, finite_or_none, problems

BENCHMARKS = (
    "cache",
    "decode_cosine",
    "downloader",
    "embedding",
    "ingest",
    "library",
    "quality",
    "query",
    "soak",
    "vectorstore",
)
INVALID = 1


def report(name: str, argv: list[str], run: Callable[[list[str]], dict[str, Any]], module: object) -> int:
    """Run ``run(argv)`` under a :class:`MachineWatch`, print the line, and say whether it is valid."""
    with MachineWatch([name, *argv]) as watch:
        figures = run(argv)
    figures = {"benchmark": name, **figures, **watch.fields()}
    found = problems(figures, getattr(module, "REQUIRED", ()), getattr(module, "LIMITS", {}))
    if not hasattr(module, "REQUIRED"):
        found.insert(0, f"bench.{name} declares no REQUIRED fields")
    if found:
        figures = {**finite_or_none(figures), "invalid": found}  # type: ignore[dict-item]
    print(json.dumps(figures, allow_nan=False), flush=True)
    for problem in found:
        print(f"bench {name}: invalid: {problem}", file=sys.stderr, flush=True)
    return INVALID if found else 0


def load(name: str) -> ModuleType:
    """The benchmark's module: ``bench.NAME``, or ``bench.NAME.run`` when NAME is a package."""
    module = importlib.import_module(f"bench.{name}")
    if hasattr(module, "__path__"):
        module = importlib.import_module(f"bench.{name}.run")
    return module


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in BENCHMARKS:
        print(f"usage: python -m bench {{{','.join(BENCHMARKS)}}} [--quick] [options]")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module = load(argv[0])
    return report(argv[0], argv[1:], module.run, module)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
