"""``python -m bench vectorstore`` runs end to end on each embedded engine and emits the fields its
docstring lists, valid by the bench runner's own check (exit 0, no ``invalid``).

Small sizes keep it fast; the real engines, the indexer's writer and the app's search run as in the
benchmark. At these sizes Edge's segments are below its indexing threshold (searched exhaustively) and
qdrant-client's embedded mode is brute force, so recall must be 1.0 with and without the filter: a filter
lost on the way (or a wrong one) shows as a lower recall.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.vectorstore import HEADLINE, PER_LINE
from testkit import REPO_ROOT

SIZE = 300
ENGINES = ("edge",)  # the other engines run the same code; the contract suite holds them to Edge


@pytest.mark.integration
@pytest.mark.timeout(180)
def test_vectorstore_bench_emits_a_line_per_engine_and_a_valid_summary(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "bench", "vectorstore", "--engines", ",".join(ENGINES), "--sizes", str(SIZE)]
    result = subprocess.run(
        [*command, "--queries", "4", "--dir", str(tmp_path)],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == len(ENGINES) + 1
    for engine, figures in zip(ENGINES, lines, strict=False):
        assert figures.keys() >= {*PER_LINE, "engine", "points", "queries", "filter_matches"}
        assert (figures["engine"], figures["points"], figures["queries"]) == (engine, SIZE, 4)
        assert figures["recall_at_10"] == 1.0
        assert figures["filtered_recall_at_10"] == 1.0
        # site3.example (every 7th point) with width >= 1024 (3 of the 5 widths)
        assert figures["filter_matches"] == sum(1 for i in range(SIZE) if i % 7 == 3 and i % 5 >= 2)
        assert figures["insert_points_per_s"] > 0
        assert figures["search_p99_ms"] >= figures["search_p50_ms"] > 0
        assert figures["filtered_p99_ms"] >= figures["filtered_p50_ms"] > 0
        assert figures["peak_rss_mb"] >= figures["open_rss_mb"] >= figures["baseline_rss_mb"] > 0
        assert figures["folder_mb"] > 0
    summary = lines[-1]
    assert "invalid" not in summary
    assert summary["runs"] == [[engine, SIZE] for engine in ENGINES]
    for engine, figures in zip(ENGINES, lines, strict=False):
        assert summary[f"{engine}_search_p50_ms_{SIZE}"] == figures["search_p50_ms"]
    assert not set(HEADLINE) & set(summary), "the Edge 100k headline only when Edge ran at 100k"
    assert not list(tmp_path.iterdir()), "the benchmark leaves no folder behind"
