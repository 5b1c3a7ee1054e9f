"""``python -m embedding.ray_serve``: a wrong setting stops it before it touches a cluster, in one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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


def test_a_worker_is_alive_while_its_raylet_runs(tmp_path: Path) -> None:
    """The worker containers' healthcheck reads process names: a raylet among them is a live node."""
    from embedding.ray_serve.node_alive import raylet_runs

    for pid, name in (("1", "tini"), ("7", "python"), ("self", "python")):
        (tmp_path / pid).mkdir()
        (tmp_path / pid / "comm").write_text(f"{name}\n")
    (tmp_path / "9").mkdir()  # a process that exited: no comm file left
    assert not raylet_runs(tmp_path)
    (tmp_path / "12").mkdir()
    (tmp_path / "12" / "comm").write_text("raylet\n")
    assert raylet_runs(tmp_path)
