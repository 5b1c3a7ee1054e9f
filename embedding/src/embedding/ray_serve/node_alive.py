"""``python -m embedding.ray_serve.node_alive``: exit 0 while this container's Ray node (its raylet) runs.

The healthcheck of compose's ``ray-worker`` containers: Ray's own ``ray health-check`` is not a public
API, and a worker whose raylet died serves no replica. Reads ``/proc`` only (no Ray import, no network).
"""

from __future__ import annotations

import sys
from pathlib import Path


def raylet_runs(proc: Path = Path("/proc")) -> bool:
    """Whether a process named ``raylet`` runs here (processes that exit meanwhile are skipped)."""
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "comm").read_text().strip() == "raylet":
                return True
        except OSError:
            continue
    return False


if __name__ == "__main__":
    sys.exit(0 if raylet_runs() else 1)
