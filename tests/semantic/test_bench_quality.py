"""``python -m bench quality --quick`` runs end to end through the real services with the demo model.

Its last line carries the fields the benchmark documents; the service (its CPU default runtime,
ONNX Runtime on the exported bundle) must rank every query as the in-process OpenCLIP reference
does, and recall@5 must be what a person would call working.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testkit import REPO_ROOT

pytestmark = pytest.mark.integration

FIELDS = {"recall_at_1", "recall_at_5", "recall_at_10", "mrr", "reference_recall_at_5", "reference_mrr", "same_ranks"}


def test_bench_quality_quick_matches_the_reference() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bench", "quality", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert set(figures) >= FIELDS
    assert figures["same_ranks"] is True
    assert figures["recall_at_5"] == figures["reference_recall_at_5"]
    assert figures["mrr"] == figures["reference_mrr"]
    assert figures["recall_at_5"] >= 0.9
    assert figures["image_recall_at_5"] >= 0.9
    assert figures["text_queries"] == 40
    assert figures["image_queries"] == 3 * 40
