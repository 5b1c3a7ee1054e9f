"""What every benchmark's JSON line carries, and when a line is invalid (an invalid run fails).

Each bench module declares ``REQUIRED`` (the fields its line must have, not null; a tuple, or a
function of the figures when they depend on the options) and may declare ``LIMITS``: a ratio
against a reference that does a strict subset of the measured side's work cannot honestly fall on
the far side of 1, so such a value (with its per-round or per-query spread all on that side too,
where the bench gives one: :class:`Limit`) says the two sides got different machines, and the run
fails instead of printing a flattering figure. Any number that is not finite fails it too.

Every line also says where it was measured: the command, the 1-minute load average at the start
and the end, the CPU count, the runtime, the package versions and commit, and ``others_cpu_cores``:
the CPU that processes outside the benchmark's own process tree used during the run, in cores (all
busy CPU time minus the tree's, over the wall time). The load average counts the benchmark's own
threads too; the others' CPU does not, so ``machine`` is ``quiet`` when the others used at most
:data:`QUIET_OTHERS_CORES` and ``loaded`` otherwise. Processes too short-lived for the 1-second
sampling count as others, so the label errs towards ``loaded``.
"""

from __future__ import annotations

import functools
import math
import os
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from bench.pss import tree_pids

__all__ = ["COMMON", "QUIET_OTHERS_CORES", "READY_S", "Limit", "MachineWatch", "finite_or_none", "problems", "versions"]

COMMON = (
    "benchmark",
    "command",
    "load_start",
    "load_end",
    "cpu_count",
    "others_cpu_cores",
    "machine",
    "runtime",
    "versions",
)
QUIET_OTHERS_CORES = 0.2
READY_S = 900  # how long a benchmark waits for a service to start: minutes on a busy machine
PACKAGES = (
    "torch",
    "open_clip_torch",
    "onnxruntime",
    "onnxruntime-gpu",
    "litserve",
    "qdrant-client",
    "qdrant-edge-py",
    "pillow",
    "numpy",
    "redis",
    "aiohttp",
    "aio-pika",
    "streamlit",
)
REPO = Path(__file__).resolve().parents[3]

Required = Sequence[str] | Callable[[Mapping[str, Any]], Sequence[str]]


@dataclass(frozen=True)
class Limit:
    """Where a reference ratio becomes impossible: below ``at_least`` or above ``at_most``, and why.

    With ``spread`` (the name of the field holding the same ratio per round, or its interquartile
    range per query), the ratio is impossible only when the whole spread is past the bound too: a
    median just past 1 whose rounds straddle it is noise the line shows (and a reader can judge), not
    a measurement of the impossible; one whose every round is past 1 is.
    """

    at_least: float | None = None
    at_most: float | None = None
    why: str = ""
    spread: str | None = None

    def _past(self, value: float) -> bool:
        return (self.at_least is not None and value < self.at_least) or (
            self.at_most is not None and value > self.at_most
        )

    def broken_by(self, value: float, figures: Mapping[str, Any] | None = None) -> bool:
        if not self._past(value):
            return False
        spread = (figures or {}).get(self.spread) if self.spread else None
        values = [v for v in spread if isinstance(v, int | float)] if isinstance(spread, list | tuple) else []
        return all(self._past(v) for v in values)


def _numbers(value: object, path: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, bool):
        return
    if isinstance(value, int | float):
        yield path, float(value)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _numbers(item, f"{path}.{key}" if path else str(key))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _numbers(item, f"{path}[{index}]")


def problems(figures: Mapping[str, Any], required: Required, limits: Mapping[str, Limit]) -> list[str]:
    """Why a line is invalid (empty when it is not): a required field missing or null, a number not
    finite, a ratio past its limit."""
    names = required(figures) if callable(required) else required
    found = [f"{name}: missing" for name in (*COMMON, *names) if figures.get(name) is None]
    found += [f"{path}: {value} is not finite" for path, value in _numbers(figures, "") if not math.isfinite(value)]
    for name, limit in limits.items():
        value = figures.get(name)
        if isinstance(value, int | float) and math.isfinite(value) and limit.broken_by(value, figures):
            bound = f">= {limit.at_least}" if limit.at_least is not None and value < limit.at_least else ""
            bound = bound or f"<= {limit.at_most}"
            spread = f", and so is every value of {limit.spread}" if limit.spread else ""
            found.append(f"{name}: {value} is impossible (must be {bound}{spread}: {limit.why})")
    return found


def finite_or_none(value: object) -> object:
    """The same structure with every non-finite float replaced by None (so the line is still JSON)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(item) for item in value]
    return value


@functools.cache
def versions() -> dict[str, str]:
    """Python, the installed versions of the packages that do the measured work, and the commit."""
    found = {"python": sys.version.split()[0]}
    for package in PACKAGES:
        try:
            found[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    found["commit"] = commit
    return found


def _busy_s() -> float:
    times = psutil.cpu_times()
    return sum(times) - times.idle - getattr(times, "iowait", 0.0)


def _own_cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


class MachineWatch:
    """The load at the start and end, and the CPU other processes used while the benchmark ran."""

    def __init__(self, argv: Sequence[str], interval_s: float = 1.0) -> None:
        self.command = shlex.join(["python", "-m", "bench", *argv])
        self.interval_s = interval_s
        self._seen: dict[tuple[int, float], float] = {}  # (pid, start time) -> CPU seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="machine-watch", daemon=True)

    def _sample(self) -> None:
        for pid in tree_pids(os.getpid()):
            try:
                process = psutil.Process(pid)
                key = (pid, process.create_time())
                self._seen[key] = max(self._seen.get(key, 0.0), _own_cpu_s(process))
            except psutil.Error:
                continue

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> MachineWatch:
        self.load_start = os.getloadavg()[0]
        self._sample()
        self._own_start = sum(self._seen.values())
        self._busy_start, self._started = _busy_s(), time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self.load_end = os.getloadavg()[0]
        self.elapsed_s = max(time.monotonic() - self._started, 1e-9)
        self.own_cpu_s = sum(self._seen.values()) - self._own_start
        self.others_cpu_s = max(0.0, _busy_s() - self._busy_start - self.own_cpu_s)
        self.others_cpu_cores = self.others_cpu_s / self.elapsed_s

    def fields(self) -> dict[str, Any]:
        """The fields every line carries (after the run: ``with`` has ended)."""
        return {
            "command": self.command,
            "load_start": round(self.load_start, 2),
            "load_end": round(self.load_end, 2),
            "cpu_count": len(os.sched_getaffinity(0)),
            "others_cpu_cores": round(self.others_cpu_cores, 2),
            "machine": "quiet" if self.others_cpu_cores <= QUIET_OTHERS_CORES else "loaded",
            "versions": versions(),
        }
