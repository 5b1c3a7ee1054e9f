"""One run of ``python -m bench library``: a photo folder through the real downloader, indexer and embedding
service to an embedded store, with each service's CPU and peak PSS; and the in-process measures beside it
(the decode's CPU per photo, the reduced decode's cosines)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.pss import PeakPss
from dyimages_common.library import state as library_state
from dyimages_common.library.paths import is_photo_name
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.factory import open_store
from testkit.procs import free_port, start_module, stop
from testkit.rabbit import rabbit_env

_COUNTER = r"^{name}(?:\{{(?:stage|reason)=\"([a-z_]+)\"\}})? ([0-9.e+-]+)$"


def _counters(url: str, name: str) -> dict[str, float]:
    """A counter's samples by label (``""`` when it has none), from a /metrics page; {} when unreachable."""
    try:
        text = httpx.get(url, timeout=5).text
    except httpx.TransportError:
        return {}
    found: dict[str, float] = defaultdict(float)
    for label, value in re.findall(_COUNTER.format(name=re.escape(name)), text, re.MULTILINE):
        found[label] += float(value)
    return dict(found)


def _cpu_s(process: psutil.Process) -> float:
    total = 0.0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


def library_contents(folder: Path) -> dict[str, list[str]]:
    """sha256 -> the photo paths (relative, sorted) holding it: what the index must end up with."""
    found: dict[str, list[str]] = defaultdict(list)
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if path.is_file() and is_photo_name(path.name) and not relative.startswith("."):
            found[hashlib.sha256(path.read_bytes()).hexdigest()].append(relative)
    return dict(found)


def point_at(link: Path, target: Path) -> None:
    """Make ``link`` a symlink to ``target`` in one step (the folder the services see changes at once)."""
    new = link.with_name(link.name + ".new")
    with contextlib.suppress(FileNotFoundError):
        new.unlink()
    new.symlink_to(target, target_is_directory=True)
    os.replace(new, link)


@dataclass
class PipelineRun:
    """The downloader (scanning ``link``, which becomes ``library`` when the clock starts), the indexer and
    the shared embedding service, from an empty index. The services start on an empty folder and the clock
    and the CPU count start once the downloader has looked at it: its start-up is not the library's cost."""

    name: str
    library: Path
    link: Path
    workdir: Path
    queue: str
    embedding_url: str
    embedding_pid: int
    seconds: float = 0.0
    distinct: int = 0
    files: int = 0
    cpu_s: dict[str, float] = field(default_factory=dict)
    scanner_cpu_s: dict[str, float] = field(default_factory=dict)
    peak_pss_mib: dict[str, float] = field(default_factory=dict)

    @property
    def per_s(self) -> float:
        return self.distinct / self.seconds

    def measure(self) -> PipelineRun:
        expected = library_contents(self.library)
        self.distinct, self.files = len(expected), sum(len(paths) for paths in expected.values())
        self.workdir.mkdir(parents=True)
        state_dir, qdrant_path, empty = self.workdir / "state", self.workdir / "qdrant", self.workdir / "empty"
        state_dir.mkdir()
        empty.mkdir()
        point_at(self.link, empty)
        indexer_port, downloader_port = free_port(), free_port()
        indexer_log = self.workdir / "indexer.log"
        indexer = start_module(
            "indexer",
            env={
                **rabbit_env(self.queue),
                "EMBEDDING_SERVICE_URL": self.embedding_url,
                "QDRANT_PATH": str(qdrant_path),
                "METRICS_PORT": str(indexer_port),
                "INDEXER_PROGRESS_INTERVAL_S": "10",
            },
            log_path=indexer_log,
        )
        downloader = None
        try:
            _wait_for(lambda: "consuming" in indexer_log.read_text(errors="replace"), indexer, indexer_log)
            downloader = start_module(
                "downloader",
                env={
                    **rabbit_env(self.queue),
                    "IMAGES_DIR": str(state_dir),
                    "URLS_FILE": str(self.workdir / "no-urls.txt"),
                    "PHOTOS_DIR": str(self.link),
                    "METRICS_PORT": str(downloader_port),
                    # The folder is whole when the clock starts: no copy to wait out; look at it again soon.
                    "DOWNLOADER_LIBRARY_SETTLE_S": "0",
                    "DOWNLOADER_LIBRARY_POLL_S": "0.2",
                    "LOG_LEVEL": "WARNING",
                },
                log_path=self.workdir / "downloader.log",
            )
            downloader_metrics = f"http://127.0.0.1:{downloader_port}/metrics"
            looked = "dyimages_downloader_library_scan_seconds_count"
            _wait_for(
                lambda: _counters(downloader_metrics, looked).get("", 0) >= 1,
                downloader,
                self.workdir / "downloader.log",
            )
            processes = {
                "indexer": psutil.Process(indexer.pid),
                "embedding": psutil.Process(self.embedding_pid),
                "downloader": psutil.Process(downloader.pid),
            }
            started_cpu = {name: _cpu_s(process) for name, process in processes.items()}
            point_at(self.link, self.library)
            started = time.monotonic()
            with contextlib.ExitStack() as peaks:
                meters = {name: peaks.enter_context(PeakPss(process.pid)) for name, process in processes.items()}
                cpu = dict(started_cpu)
                state = library_state.library_state_path(state_dir / ".state" / "downloader.sqlite3")
                while not self._all_indexed(state, downloader_port, indexer_port):
                    for process in (indexer, downloader):
                        if process.poll() is not None:
                            raise RuntimeError(f"{self.name}: a service stopped:\n{_tail(self.workdir)}")
                    if time.monotonic() - started > 3600:
                        raise RuntimeError(f"{self.name}: not indexed within an hour:\n{_tail(self.workdir)}")
                    cpu = {name: max(cpu[name], _cpu_s(process)) for name, process in processes.items()}
                    time.sleep(0.2)
                self.seconds = time.monotonic() - started
                cpu = {name: max(cpu[name], _cpu_s(process)) for name, process in processes.items()}
                self.cpu_s = {name: cpu[name] - started_cpu[name] for name in processes}
                self.scanner_cpu_s = _counters(
                    f"http://127.0.0.1:{downloader_port}/metrics", "dyimages_downloader_library_cpu_seconds_total"
                )
                self.peak_pss_mib = {name: meter.peak_mib for name, meter in meters.items()}
        finally:
            if downloader is not None:
                stop(downloader, signal.SIGTERM)
            stop(indexer, signal.SIGTERM)
        self._check_index(qdrant_path, expected)
        return self

    def _all_indexed(self, state: Path, downloader_port: int, indexer_port: int) -> bool:
        """Every file recorded, every message published and every published message indexed."""
        counts = library_state.counts(state)
        if counts["failed"]:
            failures = library_state.failures(state, limit=5)
            raise RuntimeError(f"{self.name}: {counts['failed']} photo(s) refused, e.g. {failures}")
        if counts["done"] < self.files or counts["unpublished"]:
            return False
        published = sum(
            _counters(f"http://127.0.0.1:{downloader_port}/metrics", "dyimages_downloader_published_total").values()
        )
        indexer = f"http://127.0.0.1:{indexer_port}/metrics"
        settled = sum(_counters(indexer, "dyimages_indexer_indexed_total").values())
        settled += sum(_counters(indexer, "dyimages_indexer_dead_lettered_total").values())
        settled += sum(_counters(indexer, "dyimages_indexer_library_refused_total").values())
        return published > 0 and settled >= published

    def _check_index(self, qdrant_path: Path, expected: dict[str, list[str]]) -> None:
        index = open_store(load_settings(QdrantSettings, qdrant_path=qdrant_path))
        try:
            found = {point.sha256: sorted(point.library_paths) for _, point in index.points()}
        finally:
            index.close()
        if found != expected:
            missing = set(expected) - set(found)
            raise RuntimeError(
                f"{self.name}: the index holds {len(found)} photos for {len(expected)}; missing {missing}"
            )


def _wait_for(ready: object, process: object, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ready():  # type: ignore[operator]
        if process.poll() is not None or time.monotonic() > deadline:  # type: ignore[attr-defined]
            raise RuntimeError(f"{log.name}:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.1)


def _tail(workdir: Path) -> str:
    return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-1500:]}" for log in workdir.glob("*.log"))
