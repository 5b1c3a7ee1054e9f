"""bench/RESULTS.md is built from commands, and bench/run-all reruns exactly what it quotes.

* The ``Command: `python -m bench …``` lines of RESULTS.md are, in order, what ``bench/run-all --list``
  prints, and each names a benchmark ``python -m bench`` runs.
* Every JSON line in the sections of those commands carries where it was measured (the fields every
  line carries, bench/src/bench/figures.py), its ``machine`` label agrees with its recorded
  ``others_cpu_cores``, and the text that introduces it says the same label: quiet or loaded is
  decided by the recorded load, not by the writer.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest

from bench.__main__ import BENCHMARKS
from bench.figures import COMMON, QUIET_OTHERS_CORES
from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

RESULTS = REPO_ROOT / "bench" / "RESULTS.md"
COMMAND = re.compile(r"^Command: `(python -m bench [^`]+)`", re.MULTILINE)
JSON_BLOCK = re.compile(r"```json\n(.*?)```", re.DOTALL)


def quoted_commands() -> list[str]:
    return COMMAND.findall(RESULTS.read_text(encoding="utf-8"))


def test_run_all_reruns_exactly_the_quoted_commands() -> None:
    listed = subprocess.run(
        ["bash", str(REPO_ROOT / "bench" / "run-all"), "--list"], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert listed == quoted_commands()
    assert all(command.split()[3] in BENCHMARKS for command in listed)


def test_each_line_of_a_quoted_benchmark_says_where_it_was_measured() -> None:
    sections = [part for part in RESULTS.read_text(encoding="utf-8").split("\n## ") if COMMAND.search(part)]
    assert len(sections) == len(quoted_commands())  # one section per quoted command
    checked = 0
    for section in sections:
        for block in JSON_BLOCK.finditer(section):
            introduction = section[: block.start()].rstrip().split("\n\n")[-1]
            for raw in block.group(1).strip().splitlines():
                line = json.loads(raw)
                checked += 1
                assert set(COMMON) <= set(line), line.get("command")
                assert line["machine"] == ("quiet" if line["others_cpu_cores"] <= QUIET_OTHERS_CORES else "loaded")
                assert f"**{line['machine']}**" in introduction, line["command"]
    assert checked >= len(sections)
