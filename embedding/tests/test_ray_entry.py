"""``python -m embedding.ray_serve``: a wrong setting stops it before it touches a cluster, in one line."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"EMBEDDING_RAY_MIN_REPLICAS": "3", "EMBEDDING_RAY_MAX_REPLICAS": "2"}, "EMBEDDING_RAY_MIN_REPLICAS"),
        ({"EMBEDDING_RAY_PROXY": "Everywhere"}, "EMBEDDING_RAY_PROXY"),
    ],
)
def test_a_wrong_setting_exits_2_with_one_line(env: dict[str, str], named: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "embedding.ray_serve", "deploy"],
        env={**os.environ, "RAY_ADDRESS": "127.0.0.1:1", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    assert named.lower() in lines[0].lower()
