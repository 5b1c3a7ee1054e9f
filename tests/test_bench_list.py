"""docs/development.md's benchmark line names exactly the benchmarks `python -m bench` runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.__main__ import BENCHMARKS

pytestmark = pytest.mark.unit

DEVELOPMENT = Path(__file__).resolve().parents[1] / "docs" / "development.md"


def test_the_development_doc_lists_every_benchmark() -> None:
    listed = re.search(r"python -m bench \{([a-z_,]+)\}", DEVELOPMENT.read_text(encoding="utf-8"))
    assert listed, "docs/development.md has no `python -m bench {…}` line"
    assert listed.group(1).split(",") == sorted(BENCHMARKS)
