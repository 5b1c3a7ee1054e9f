"""`dyimages` as a real process, the way an operator runs it: its exit code and both output streams."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping


def run_dyimages(env: Mapping[str, str], *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """``python -m search_app.cli.main ARGS`` with ``env`` over this environment (the program's own start-up,
    library imports and logging included, which an in-process runner would not show)."""
    return subprocess.run(
        [sys.executable, "-m", "search_app.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
