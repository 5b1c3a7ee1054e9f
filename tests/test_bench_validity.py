"""An invalid benchmark run fails: ``python -m bench NAME`` exits non-zero when its line lacks a field
the bench declares, holds a number that is not finite, or a reference ratio past its limit.

Each case runs the real reporting path of ``bench/__main__.py`` (the machine watch, the common
fields, the checks, the JSON line) with the bench's own ``REQUIRED`` and ``LIMITS``; only the
measurement (``run``) is replaced by the figures under test, since measuring takes minutes. A
complete line, each limit at its bound, passes: so a bench cannot declare a field it never writes
without this failing where its real run would.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from bench.__main__ import BENCHMARKS, INVALID, load, report
from bench.figures import COMMON

pytestmark = pytest.mark.unit

# The benchmarks whose ratios compare with a reference doing a strict subset of the measured work.
WITH_REFERENCE = ("cache", "downloader", "embedding", "ingest", "query")


def _required(module: object, figures: dict[str, Any]) -> list[str]:
    required = module.REQUIRED  # type: ignore[attr-defined]
    return list(required(figures) if callable(required) else required)


def complete(module: object) -> dict[str, Any]:
    """A line with every field the bench requires (each limit's bound where it has one, else 1.0)."""
    limits = getattr(module, "LIMITS", {})
    figures: dict[str, Any] = {"runtime": "onnx"}
    while missing := [name for name in _required(module, figures) if name not in figures]:
        for name in missing:
            limit = limits.get(name)
            bound = None if limit is None else (limit.at_least if limit.at_least is not None else limit.at_most)
            figures[name] = 1.0 if bound is None else bound
    return figures


def _report(name: str, figures: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    module = load(name)
    status = report(name, [], lambda argv: dict(figures), module)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    return status, json.loads(line, parse_constant=lambda constant: pytest.fail(f"{constant} in the JSON line"))


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_complete_line_passes_and_carries_where_it_was_measured(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load(name)
    assert hasattr(module, "REQUIRED"), f"bench.{name} declares no REQUIRED fields"
    status, line = _report(name, complete(module), capsys)
    assert status == 0, line.get("invalid")
    assert set(COMMON) <= set(line)
    assert line["command"] == f"python -m bench {name}"
    assert line["cpu_count"] >= 1
    assert line["machine"] in {"quiet", "loaded"}
    assert "python" in line["versions"]
    assert "commit" in line["versions"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_missing_or_null_field_fails(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(name)
    figures = complete(module)
    for field in _required(module, figures):
        for broken in ({k: v for k, v in figures.items() if k != field}, {**figures, field: None}):
            status, line = _report(name, broken, capsys)
            assert status == INVALID, field
            assert any(problem.startswith(f"{field}: missing") for problem in line["invalid"]), line["invalid"]


@pytest.mark.parametrize("name", BENCHMARKS)
def test_a_number_that_is_not_finite_fails_and_the_line_stays_json(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    module = load(name)
    figures = complete(module)
    numbers = [k for k, v in figures.items() if isinstance(v, float)][:1] or ["extra_figure"]
    for field in numbers:
        for value in (math.nan, math.inf, -math.inf):
            status, line = _report(name, {**figures, field: value}, capsys)
            assert status == INVALID
            assert line[field] is None
            assert any(problem.startswith(f"{field}: ") and "not finite" in problem for problem in line["invalid"])
    status, line = _report(name, {**figures, "extra": {"nested": [math.nan]}}, capsys)
    assert status == INVALID
    assert line["extra"] == {"nested": [None]}


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_an_impossible_reference_ratio_fails(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    module = load(name)
    limits = getattr(module, "LIMITS", {})
    figures = complete(module)
    checked = {field: limit for field, limit in limits.items() if field in figures}
    assert checked, "a bench with a reference declares a limit on a field it requires"
    for field, limit in checked.items():
        past = limit.at_least - 0.001 if limit.at_least is not None else limit.at_most + 0.001  # type: ignore[operator]
        status, line = _report(name, {**figures, field: past}, capsys)
        assert status == INVALID, field
        assert any(problem.startswith(f"{field}: ") and "impossible" in problem for problem in line["invalid"])


@pytest.mark.parametrize("name", WITH_REFERENCE)
def test_a_ratio_past_its_bound_is_noise_while_its_spread_straddles_the_bound(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A median just past 1 whose rounds (or per-query quartiles) straddle 1 is shown, not failed; one whose
    whole spread is past 1 fails."""
    module = load(name)
    figures = complete(module)
    spread_limits = {f: limit for f, limit in module.LIMITS.items() if f in figures and limit.spread}
    for field, limit in spread_limits.items():
        past = limit.at_least - 0.01 if limit.at_least is not None else limit.at_most + 0.01  # type: ignore[operator]
        possible = limit.at_least + 0.05 if limit.at_least is not None else limit.at_most - 0.05  # type: ignore[operator]
        status, line = _report(name, {**figures, field: past, limit.spread: [possible, past]}, capsys)
        assert status == 0, line.get("invalid")
        status, line = _report(name, {**figures, field: past, limit.spread: [past, past]}, capsys)
        assert status == INVALID, field
        assert any(problem.startswith(f"{field}: ") and "impossible" in problem for problem in line["invalid"])
    if name in {"downloader", "embedding", "ingest", "query"}:
        assert spread_limits, f"bench.{name} reports the spread of its reference ratios"
