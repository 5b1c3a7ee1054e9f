"""Every entry point answers --help without needing any service (the README and compose use them)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

DYIMAGES = str(Path(sys.executable).parent / "dyimages")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ([sys.executable, "-m", "downloader", "--help"], "--once"),
        ([sys.executable, "-m", "indexer", "--help"], "--exit-when-idle"),
        ([sys.executable, "-m", "embedding", "--help"], "Usage"),
        ([sys.executable, "-m", "search_app", "--help"], "APP_HOST:APP_PORT"),
        ([DYIMAGES, "--help"], "reindex"),
    ],
    ids=["downloader", "indexer", "embedding", "app", "dyimages"],
)
def test_help(command: list[str], expected: str) -> None:
    result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout
