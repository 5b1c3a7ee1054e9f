"""``python -m bench quality --quick`` runs end to end through the real services with the demo model.

Its last line carries the fields the benchmark declares; the service (its CPU default runtime, ONNX
Runtime on the exported bundle) must rank every query as the in-process OpenCLIP reference does
(parity), recall@5 on the test split must be what a person would call working, and the model must
beat the colour-only baseline, which is not the model.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.quality import QUICK, REQUIRED
from testkit import REPO_ROOT

pytestmark = pytest.mark.integration


def test_bench_quality_quick_scores_the_test_split_and_beats_the_baseline() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "quality", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) >= set(REQUIRED)
    assert "invalid" not in figures
    assert figures["parity_same_ranks"] is True
    assert figures["runtime"] == "onnx"
    assert figures["text_queries"] == QUICK
    assert figures["image_queries"] == 3 * QUICK
    assert figures["test_recall_at_5"] >= 0.9
    assert figures["test_image_recall_at_5"] >= 0.9
    assert figures["test_mrr"] > figures["baseline_mrr"]
    assert figures["test_recall_at_5"] > figures["baseline_recall_at_5"]
