"""Memory of a service as the machine pays for it: PSS summed over the service's processes.

A service that forks its workers (LitServe, Ray) shares pages between them: the interpreter, the
libraries, the model weights mapped before the fork. Summing each process's RSS (or its peak,
VmHWM) counts every shared page once per process and so overstates the whole; summing PSS
(proportional set size: a page shared by n processes counts 1/n in each) gives what the tree
really holds. The kernel keeps no peak of PSS, so :class:`PeakPss` samples it.

``python -m bench.pss PID`` prints the tree's PSS in MiB, for a look at a running service.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import psutil

__all__ = ["PeakPss", "PssUnavailable", "process_pss_kib", "tree_pids", "tree_pss_mib"]


class PssUnavailable(RuntimeError):
    """The kernel does not show this process's PSS to us (no smaps_rollup, or no permission)."""


def process_pss_kib(pid: int) -> int | None:
    """One process's PSS in KiB from /proc/PID/smaps_rollup; None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    except OSError as exc:
        raise PssUnavailable(f"cannot read the PSS of process {pid}: {exc}") from exc
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    if not text:  # a zombie (or a kernel thread) maps nothing
        return 0
    raise PssUnavailable(f"/proc/{pid}/smaps_rollup has no Pss line")


def tree_pids(pid: int) -> list[int]:
    """``pid`` and every process descended from it (children of children included)."""
    try:
        root = psutil.Process(pid)
        return [pid, *(child.pid for child in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def tree_pss_mib(pid: int) -> float:
    """PSS of ``pid`` and all its descendants, summed, in MiB; a process that exits meanwhile counts 0.

    Raises :class:`PssUnavailable` rather than under-count a process it may not read, and
    ``ProcessLookupError`` when ``pid`` itself is gone (a stopped service has no memory to report).
    """
    pids = tree_pids(pid)
    if not pids:
        raise ProcessLookupError(f"no process {pid}")
    return round(sum(process_pss_kib(one) or 0 for one in pids) / 1024, 1)


class PeakPss:
    """The largest :func:`tree_pss_mib` seen, sampled every ``interval_s`` on a thread while in use.

    Reading PSS walks the page tables of each process, a few milliseconds for a model-sized one:
    sample every second or so, not in a tight loop, or the sampling itself takes CPU from the
    service being measured. Call :meth:`sample` at the moments that matter (after a load round).
    """

    def __init__(self, pid: int, interval_s: float = 2.0) -> None:
        self.pid = pid
        self.interval_s = interval_s
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"pss-{pid}", daemon=True)
        self._error: BaseException | None = None

    def sample(self) -> float:
        value = tree_pss_mib(self.pid)
        self.peak_mib = max(self.peak_mib, value)
        return value

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.sample()
            except ProcessLookupError:
                return
            except BaseException as exc:  # re-raised by __exit__: an unreadable PSS fails the run
                self._error = exc
                return

    def __enter__(self) -> PeakPss:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        if self._error is not None:
            raise self._error


if __name__ == "__main__":
    print(tree_pss_mib(int(sys.argv[1])))
