"""The shared bench helpers measure what they say, on the real kernel.

* PSS summed over a process tree counts pages its processes share once: a parent that filled
  200 MiB and forked two children (copy-on-write, nothing copied) holds about 200 MiB in all, where
  the RSS of the three sums to about 600.
* ``others_cpu_cores`` counts CPU outside the benchmark's own process tree: a spinning child of the
  benchmark counts as its own, a spinning process the benchmark does not own (an orphan, as another
  engineer's test would be) as others'. Checked against each spinner's own CPU time, so the load
  other work puts on the machine only adds to what is asserted as a lower bound.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench.figures import MachineWatch
from bench.pss import tree_pss_mib

pytestmark = pytest.mark.unit

FORKING_PARENT = """
import os, sys, time
block = bytearray(200 * 1024 * 1024)
for i in range(0, len(block), 4096):
    block[i] = 1
for _ in range(2):
    if os.fork() == 0:
        time.sleep(60)
        os._exit(0)
sys.stdout.write("ready\\n"); sys.stdout.flush()
time.sleep(60)
"""
SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"


def test_pss_counts_pages_shared_by_forked_processes_once() -> None:
    parent = subprocess.Popen([sys.executable, "-c", FORKING_PARENT], stdout=subprocess.PIPE, start_new_session=True)
    try:
        assert parent.stdout is not None
        assert parent.stdout.readline() == b"ready\n"
        tree = [parent.pid, *(child.pid for child in psutil.Process(parent.pid).children(recursive=True))]
        assert len(tree) == 3
        rss_mib = sum(psutil.Process(pid).memory_info().rss for pid in tree) / 2**20
        pss_mib = tree_pss_mib(parent.pid)
        assert rss_mib > 3 * 200
        assert 200 < pss_mib < 200 + 60  # the block once, plus three interpreters' own pages
    finally:
        os.killpg(parent.pid, signal.SIGKILL)
        parent.wait()


def _cpu_s(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def test_others_cpu_is_what_ran_outside_the_benchmarks_own_tree(tmp_path: Path) -> None:
    pid_file = tmp_path / "orphan.pid"
    # An orphan: started through a shell that exits at once, so it is no descendant of this process.
    script = tmp_path / "spin.py"
    script.write_text(SPIN.format(seconds=4))
    launcher = f"{sys.executable} {script} & echo $! > {pid_file}"
    with MachineWatch(["probe"]) as watch:
        subprocess.run(["sh", "-c", launcher], check=True)
        orphan = int(pid_file.read_text())
        own = subprocess.Popen([sys.executable, "-c", SPIN.format(seconds=3) + "time.sleep(1.5)"])
        time.sleep(3.5)
        own_cpu, orphan_cpu = _cpu_s(own.pid), _cpu_s(orphan)
        own.wait()
        psutil.Process(orphan).wait(10)
    assert own_cpu > 0.3  # each spinner got some CPU, however busy the machine
    assert orphan_cpu > 0.3
    assert watch.own_cpu_s >= own_cpu * 0.9
    assert watch.others_cpu_s >= orphan_cpu * 0.9
    fields = watch.fields()
    assert fields["others_cpu_cores"] == round(watch.others_cpu_s / watch.elapsed_s, 2)
    assert fields["machine"] == ("quiet" if fields["others_cpu_cores"] <= 0.2 else "loaded")
