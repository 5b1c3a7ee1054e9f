"""Run one benchmark: ``python -m bench NAME [--quick] [options]``.

Each benchmark is a module ``bench.NAME`` (or a package whose ``run`` module it is, as
``bench.soak``) with ``run(argv: list[str]) -> dict``; its figures are
printed as one JSON object on the last line of output. Run from the repository root.
"""

from __future__ import annotations

import importlib
import json
import sys

BENCHMARKS = ("cache", "downloader", "embedding", "ingest", "quality", "query", "soak", "vectorstore")


def main(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"} or argv[0] not in BENCHMARKS:
        print(f"usage: python -m bench {{{','.join(BENCHMARKS)}}} [--quick] [options]")
        return 0 if argv and argv[0] in {"-h", "--help"} else 2
    module = importlib.import_module(f"bench.{argv[0]}")
    if hasattr(module, "__path__"):  # a package: its run module is the benchmark
        module = importlib.import_module(f"bench.{argv[0]}.run")
    figures = module.run(argv[1:])
    print(json.dumps(figures), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
