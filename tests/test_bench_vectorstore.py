"""``python -m bench vectorstore --quick`` runs end to end and emits the fields its docstring lists.

Small sizes keep it fast; the real qdrant-client embedded mode, the indexer's writer and the app's
search run as they do in the benchmark. Embedded mode is exact brute force, so recall must be 1.0
with and without the filter: a filter lost on the way (or a wrong one) shows as a lower recall.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import REPO_ROOT

SIZES = (150, 300)
PER_SIZE_FIELDS = {
    "insert_points_per_s",
    "fill_peak_rss_mb",
    "folder_mb",
    "open_s",
    "open_cpu_s",
    "baseline_rss_mb",
    "open_rss_mb",
    "peak_rss_mb",
    "search_p50_ms",
    "search_p99_ms",
    "filtered_p50_ms",
    "filtered_p99_ms",
    "search_cpu_p50_ms",
    "filtered_cpu_p50_ms",
    "recall_at_10",
    "filtered_recall_at_10",
    "filter_matches",
    "queries",
    "points",
}


@pytest.mark.integration
@pytest.mark.timeout(120)
def test_quick_vectorstore_bench_emits_a_line_per_size_and_a_summary(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "vectorstore",
            "--quick",
            "--sizes",
            ",".join(map(str, SIZES)),
            "--queries",
            "4",
            "--dir",
            str(tmp_path),
        ],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    lines = [json.loads(line) for line in result.stdout.strip().splitlines()]
    assert len(lines) == len(SIZES) + 1
    for size, figures in zip(SIZES, lines, strict=False):
        assert figures.keys() >= PER_SIZE_FIELDS
        assert figures["points"] == size
        assert figures["queries"] == 4
        assert figures["recall_at_10"] == 1.0
        assert figures["filtered_recall_at_10"] == 1.0
        # site3.example (every 7th point) with width >= 1024 (3 of the 5 widths)
        assert figures["filter_matches"] == sum(1 for i in range(size) if i % 7 == 3 and i % 5 >= 2)
        assert figures["insert_points_per_s"] > 0
        assert figures["search_p99_ms"] >= figures["search_p50_ms"] > 0
        assert figures["filtered_p99_ms"] >= figures["filtered_p50_ms"] > 0
        assert figures["search_cpu_p50_ms"] > 0
        assert figures["filtered_cpu_p50_ms"] > 0
        assert figures["peak_rss_mb"] >= figures["open_rss_mb"] >= figures["baseline_rss_mb"] > 0
        assert figures["folder_mb"] > 0
    summary = lines[-1]
    assert summary["sizes"] == list(SIZES)
    for size in SIZES:
        assert summary[f"search_p50_ms_{size}"] == lines[SIZES.index(size)]["search_p50_ms"]
        assert summary[f"filtered_recall_at_10_{size}"] == 1.0
    assert not list(tmp_path.iterdir()), "the benchmark leaves no folder behind"
