"""Training the demo model again with its seed gives the recorded scores.

The full run takes minutes; its script records a short run of the same code beside it
(``short_run`` in demo/dy-demo-scores.json). This test repeats that short run in a fresh process
(``python -m demo.train_model --short``: the same seed, thread count and deterministic algorithms)
and compares its final loss and its validation and test scores with the record.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import DEMO_CHECKPOINT, DEMO_SCORES

pytestmark = pytest.mark.integration


def test_recorded_scores_belong_to_the_committed_checkpoint_size() -> None:
    record = json.loads(DEMO_SCORES.read_text())
    assert record["checkpoint"] == DEMO_CHECKPOINT.name
    assert DEMO_CHECKPOINT.stat().st_size < 15 * 1024 * 1024
    assert record["test"]["recall_at_5"] >= 0.99  # the README says 99 in 100 (chance is ~0.05)


def test_short_training_run_reproduces_the_recorded_scores(tmp_path: Path) -> None:
    recorded = json.loads(DEMO_SCORES.read_text())["short_run"]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "demo.train_model",
            "--short",
            "--seed",
            str(recorded["seed"]),
            "--threads",
            str(recorded["threads"]),
            "--out",
            str(tmp_path / "short.pt"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    again = json.loads(result.stdout.strip().splitlines()[-1])
    assert again["final_loss"] == pytest.approx(recorded["final_loss"], abs=1e-3)
    assert again["validation"] == recorded["validation"]
    assert again["test"] == recorded["test"]
