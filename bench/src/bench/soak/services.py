"""Real service processes for the soak and the metrics test: start, SIGKILL, restart, scrape.

Each service is ``python -m <module>`` in its own process group (``testkit.procs``), configured
only by environment variables, logging to a file of its own. Nothing here imitates a service.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from testkit import REPO_ROOT
from testkit.embedding import embedding_env
from testkit.procs import free_port, start_module, stop, wait_http_ok
from testkit.rabbit import rabbit_env

LOOPBACK_ONLY = "127.0.0.1/32"
DASHBOARD = REPO_ROOT / "monitoring" / "grafana" / "dashboards" / "dyimages.json"
_METRIC_NAME = re.compile(r"\bdyimages_[a-z0-9_]+\b")


def dashboard_queries(path: Path = DASHBOARD) -> list[str]:
    """Every PromQL expression of the Grafana dashboard."""
    board = json.loads(path.read_text())
    return [target["expr"] for panel in board["panels"] for target in panel.get("targets", [])]


def dashboard_metric_names(path: Path = DASHBOARD) -> set[str]:
    """The sample names the dashboard's queries use (``_bucket``/``_sum``/``_count`` for histograms)."""
    return {name for expr in dashboard_queries(path) for name in _METRIC_NAME.findall(expr)}


@dataclass
class RunDirs:
    """One pipeline's files: images, URL state, URL file, embedded Qdrant folder, logs."""

    root: Path

    def __post_init__(self) -> None:
        for folder in (self.images, self.logs):
            folder.mkdir(parents=True, exist_ok=True)

    @property
    def images(self) -> Path:
        return self.root / "images"

    @property
    def qdrant(self) -> Path:
        return self.root / "qdrant"

    @property
    def state_db(self) -> Path:
        return self.root / "state" / "downloader.sqlite3"

    @property
    def urls_file(self) -> Path:
        return self.root / "urls" / "image_urls.txt"

    @property
    def logs(self) -> Path:
        return self.root / "logs"


def downloader_env(dirs: RunDirs, queue: str, metrics_port: int, **extra: str) -> dict[str, str]:
    return {
        **rabbit_env(queue),
        "URLS_FILE": str(dirs.urls_file),
        "IMAGES_DIR": str(dirs.images),
        "STATE_DB": str(dirs.state_db),
        "DOWNLOADER_ALLOWED_NETWORKS": LOOPBACK_ONLY,
        "METRICS_PORT": str(metrics_port),
        **extra,
    }


def indexer_env(dirs: RunDirs, queue: str, embedding_url: str, metrics_port: int, **extra: str) -> dict[str, str]:
    return {
        **rabbit_env(queue),
        "QDRANT_PATH": str(dirs.qdrant),
        "QDRANT_COLLECTION": "images",
        "EMBEDDING_SERVICE_URL": embedding_url,
        "IMAGES_DIR": str(dirs.images),
        "METRICS_PORT": str(metrics_port),
        **extra,
    }


@dataclass
class Service:
    """A restartable service process. ``starts`` counts incarnations, ``kills`` the SIGKILLs."""

    name: str
    module: str
    env: dict[str, str]
    log_dir: Path
    args: tuple[str, ...] = ()
    ready_url: str | None = None  # polled after each start until it answers 200
    process: subprocess.Popen[bytes] | None = None
    starts: int = 0
    kills: int = 0
    exit_codes: list[int] = field(default_factory=list)  # of graceful stops and own exits, not SIGKILLs

    def start(self, *, wait: bool = True, timeout: float = 180.0) -> Service:
        env = dict(self.env)
        if self.module == "embedding":
            # prometheus_client's multiprocess files: a fresh folder per incarnation, inside the
            # run's folder, so a SIGKILLed service leaves nothing behind in /tmp.
            metrics_dir = self.log_dir / f"{self.name}-prometheus-{self.starts}"
            metrics_dir.mkdir(parents=True, exist_ok=True)
            env["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
        self.starts += 1
        log_path = self.log_dir / f"{self.name}.log"
        with log_path.open("a") as log:
            log.write(f"\n===== soak: start #{self.starts} of {self.name} =====\n")
        self.process = start_module(self.module, *self.args, env=env, log_path=log_path)
        if wait and self.ready_url:
            wait_http_ok(self.ready_url, timeout=timeout, process=self.process)
        return self

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group, as a crash or the OOM killer would."""
        if self.process is not None:
            self.kills += 1
            stop(self.process, sig=signal.SIGKILL, timeout=10)
            self.process = None

    def terminate(self, timeout: float = 60.0) -> int | None:
        """SIGTERM (a graceful stop), then whatever is left of the group is killed."""
        if self.process is None:
            return None
        code = stop(self.process, sig=signal.SIGTERM, timeout=timeout)
        self.exit_codes.append(code)
        self.process = None
        return code

    def wait(self, timeout: float) -> int:
        """Wait for the process to exit by itself (``--once``, ``--exit-when-idle``)."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.terminate(timeout=10)
            raise TimeoutError(f"{self.name} did not exit within {timeout} s (see {self.log_dir})") from None
        except BaseException:  # interrupted: leave no process behind
            self.terminate(timeout=10)
            raise
        self.exit_codes.append(code)
        self.process = None
        return code


def embedding_service(dirs: RunDirs, port: int, **extra: str) -> Service:
    return Service(
        name="embedding",
        module="embedding",
        env=embedding_env(dirs.images, port, **extra),
        log_dir=dirs.logs,
        ready_url=f"http://127.0.0.1:{port}/health",
    )


Samples = dict[str, dict[tuple[tuple[str, str], ...], float]]


def scrape(port: int, path: str = "/metrics", timeout: float = 5.0) -> Samples:
    """Samples of a /metrics endpoint: sample name -> {sorted labels: value}."""
    text = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=timeout).text
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def exported_families(port: int, path: str = "/metrics") -> set[str]:
    """Names of the metric families an endpoint declares (``# TYPE`` lines), samples or not."""
    text = httpx.get(f"http://127.0.0.1:{port}{path}", timeout=5.0).text
    return {family.name for family in text_string_to_metric_families(text)}


def metric_total(samples: Samples, name: str) -> float:
    return sum(samples.get(name, {}).values())


def wait_for_metrics(port: int, process: Service, timeout: float = 120.0) -> None:
    """Wait until a worker serves /metrics (it does once its settings loaded and it started)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not process.running:
            raise RuntimeError(f"{process.name} exited before serving metrics (see {process.log_dir})")
        try:
            scrape(port, timeout=1.0)
            return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise TimeoutError(f"{process.name} served no metrics on :{port} within {timeout} s")


__all__ = [
    "RunDirs",
    "Service",
    "dashboard_metric_names",
    "dashboard_queries",
    "downloader_env",
    "embedding_service",
    "exported_families",
    "free_port",
    "indexer_env",
    "metric_total",
    "scrape",
    "wait_for_metrics",
]
