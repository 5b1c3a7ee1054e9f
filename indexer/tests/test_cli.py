"""The command line: help, and settings refused at start-up with one line naming the variable."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


def _indexer(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "indexer", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_help_names_the_idle_flag() -> None:
    result = _indexer("--help")
    assert result.returncode == 0
    assert "--exit-when-idle" in result.stdout


@pytest.mark.parametrize(
    ("env", "line"),
    [
        ({"INDEXER_BATCH_SIZE": "0"}, "INDEXER_BATCH_SIZE='0': Input should be greater than or equal to 1"),
        ({"INDEXER_BATCH_WAIT_MS": "soon"}, "INDEXER_BATCH_WAIT_MS='soon': Input should be a valid integer"),
        ({"INDEXER_BATCH_SIZE": "64", "INDEXER_PREFETCH": "10"}, "INDEXER_PREFETCH (10) is below INDEXER_BATCH_SIZE"),
        ({"EMBEDDING_SERVICE_URL": "embedding:8000"}, "EMBEDDING_SERVICE_URL='embedding:8000'"),
    ],
)
def test_a_bad_setting_stops_it_with_one_clear_line(env: dict[str, str], line: str) -> None:
    result = _indexer(**env)
    assert result.returncode == 2
    assert line in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
