"""``bench/gpu.sh`` on a machine without an NVIDIA GPU: says so, exits 0 at once, writes nothing.

(The GPU path itself can only run where there is a GPU: run the script there.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testkit import REPO_ROOT

pytestmark = pytest.mark.unit


def test_without_a_gpu_the_script_says_so_and_exits_0(tmp_path: Path) -> None:
    results = tmp_path / "RESULTS.md"
    results.write_text("# before\n")
    bin_dir = tmp_path / "bin"  # a PATH with the basics and no nvidia-smi
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env", "mktemp", "rm", "date", "head", "cat", "tail", "tee"):
        if found := shutil.which(tool):
            (bin_dir / tool).symlink_to(found)
    assert shutil.which("nvidia-smi", path=str(bin_dir)) is None
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(REPO_ROOT / "bench" / "gpu.sh")],
        env={**os.environ, "PATH": str(bin_dir), "RESULTS": str(results)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "no NVIDIA GPU" in result.stdout
    assert time.monotonic() - started < 10
    assert results.read_text() == "# before\n"


def test_bench_embedding_refuses_cuda_without_a_gpu() -> None:
    """DEVICE=cuda must run every side on the GPU or refuse: here there is none, so it refuses at once."""
    for args, env in (["--device", "cuda"], {}), ([], {"DEVICE": "cuda"}):
        result = subprocess.run(
            [sys.executable, "-m", "bench", "embedding", "--quick", *args],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode != 0
        assert "torch sees no CUDA device" in result.stderr
