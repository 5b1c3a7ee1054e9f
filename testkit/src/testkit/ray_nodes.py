"""A running Ray cluster of real nodes, as tests and benchmarks see it: its processes, its replicas, its logs,
and deploying the embedding service on it (``python -m embedding.ray_serve deploy|delete``).

:mod:`testkit.ray_cluster` starts one; stopping signals each node's own process group, nothing by name.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from embedding.ray_serve.compat import NODE_ENV, loopback_node_ip, replica_process_title
from embedding.ray_serve.settings import DEPLOYMENT_NAME
from testkit.embedding import EmbeddingService, embedding_env
from testkit.procs import free_port, stop, wait_http_ok

DEFAULT_APP = "embedding"  # what the head deploys, at / on the proxy
# Replicas of the tests' applications: a quarter CPU each (one model thread), one replica unless a test
# asks for more, so that several applications fit on a head and a worker of one CPU each.
TEST_REPLICAS = {
    "EMBEDDING_RAY_REPLICA_CPUS": "0.25",
    "EMBEDDING_RAY_MIN_REPLICAS": "1",
    "EMBEDDING_RAY_MAX_REPLICAS": "1",
}
OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's floor is 75 MiB; nothing big travels through it here
STARTED = "Ray runtime started."  # what `ray start` prints once its node is registered
FAILED = "Traceback (most recent call last)"  # what it prints when the node did not start
START_ATTEMPTS = 3
NODE_START_TIMEOUT_S = 600.0  # nodes on a busy 2-core host take minutes; a node that fails exits sooner


START_NICE = -10  # the autogroup nice of a node's session while it starts (see prioritise)


def prioritise(pid: int, nice: int) -> None:
    """Set the scheduling weight of the session ``pid`` leads (its autogroup), for every process in it.

    Ray 2.60's raylet waits a fixed 15 s for its dashboard agent to report its ports and aborts the
    node otherwise; on a shared 2-core machine the other sessions' processes starve the agent's
    imports past that. So a node's session runs at :data:`START_NICE` while it starts and at 0 once
    the cluster serves. Needs root for a negative value; elsewhere nothing changes.
    """
    with contextlib.suppress(OSError):
        Path(f"/proc/{pid}/autogroup").write_text(str(nice))


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def node_options(cpus: int) -> list[str]:
    """What every node gets: its CPUs, a small object store, free ports where Ray has fixed defaults."""
    return [
        "--num-cpus",
        str(cpus),
        "--object-store-memory",
        str(OBJECT_STORE_BYTES),
        "--dashboard-agent-listen-port",
        str(free_port()),
        "--disable-usage-stats",
    ]


class NodeFailed(RuntimeError):
    """A Ray node exited or did not come up; the message carries the end of the nodes' logs."""


@dataclass
class RayCluster:
    """A running cluster: its GCS address, the head and worker processes, its folder and logs."""

    address: str
    head: subprocess.Popen[bytes]
    serve_port: int
    root: Path
    log_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.serve_port}"

    def add_worker(self, cpus: int = 1) -> subprocess.Popen[bytes]:
        """Start one more node (``ray start --address``) and wait until the cluster counts it."""
        node_ip = loopback_node_ip(len(self.workers) + 1)
        log = open(self.log_dir / f"ray-worker-{len(self.workers) + 1}.log", "ab")  # noqa: SIM115 - lives with the node
        command = [_ray_cli(), "start", "--block", "--address", self.address, "--node-ip-address", node_ip]
        process = subprocess.Popen(
            [*command, *node_options(cpus)],
            env={**os.environ, **NODE_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        prioritise(process.pid, START_NICE)
        self.workers.append(process)
        self.wait_for_nodes(len(self.workers) + 1)
        return process

    def settle(self) -> None:
        """Every node back to the same scheduling weight as everything else (after :func:`prioritise`)."""
        for node in [self.head, *self.workers]:
            prioritise(node.pid, 0)

    def wait_for_nodes(self, count: int, timeout: float = NODE_START_TIMEOUT_S) -> None:
        """Wait until ``count`` nodes have started: each node's ``ray start`` says so once its raylet is
        registered with the GCS (a raylet process alone may still be registering)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.started_nodes() >= count:
                return
            if any(STARTED not in text and FAILED in text for text in self._node_logs()):
                raise NodeFailed(f"a Ray node failed to start\n{self.log_tails()}")  # its `ray start` may hang
            for process in [self.head, *self.workers]:
                if process.poll() is not None:
                    raise NodeFailed(f"a Ray node exited with {process.returncode}\n{self.log_tails()}")
            time.sleep(1.0)
        raise NodeFailed(f"{count} Ray nodes not up after {timeout} s\n{self.log_tails()}")

    def log_tails(self, lines: int = 15) -> str:
        """The last lines of every node's log (a failed start says why there)."""
        tails = []
        for log in sorted(self.log_dir.glob("ray-*.log")):
            text = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
            tails.append(f"--- {log}\n" + "\n".join(text[-lines:]))
        return "\n".join(tails)

    def _node_logs(self) -> list[str]:
        logs = [self.log_dir / "ray-head.log", *(self.log_dir / f"ray-worker-{n}.log" for n in range(1, 99))]
        return [log.read_text(errors="replace") for log in logs if log.exists()]

    def started_nodes(self) -> int:
        """Nodes whose ``ray start`` printed that the Ray runtime started."""
        return sum(1 for text in self._node_logs() if STARTED in text)

    def processes(self) -> list[psutil.Process]:
        """Every process of every node (the node processes and all their descendants)."""
        found = []
        for node in [self.head, *self.workers]:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(node.pid)
                found += [root, *root.children(recursive=True)]
        return found

    def replica_pids(self, app: str = DEFAULT_APP) -> list[int]:
        """The worker processes of ``app``'s embedding replicas (by their process title)."""
        title = replica_process_title(app, DEPLOYMENT_NAME)
        return [p.pid for p in self.processes() if _cmdline(p).startswith(title)]

    def _run(self, command: str, env: dict[str, str], log_path: Path) -> None:
        with log_path.open("ab") as log:
            subprocess.run(
                [sys.executable, "-m", "embedding.ray_serve", command],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=NODE_START_TIMEOUT_S,
            )

    def deploy(self, app: str, images_dir: Path, route: str | None = None, **extra: str) -> EmbeddingService:
        """Deploy (or redeploy) the embedding service as the application ``app``, at ``route`` on the
        proxy (default ``/app``)."""
        route = route or f"/{app}"
        env = {
            **embedding_env(images_dir, self.serve_port),
            **TEST_REPLICAS,
            "RAY_ADDRESS": self.address,
            "EMBEDDING_RAY_APP": app,
            "EMBEDDING_RAY_ROUTE_PREFIX": route,
            **extra,
        }
        log_path = self.log_dir / f"ray-deploy-{app}.log"
        self._run("deploy", env, log_path)
        url = self.url + route.rstrip("/")
        wait_http_ok(f"{url}/health", timeout=NODE_START_TIMEOUT_S, process=self.head)
        return EmbeddingService(url=url, env=env, log_path=log_path, pid=self.head.pid)

    def delete(self, app: str) -> None:
        """Remove a deployed application (its replicas stop, their CPUs go back to the cluster)."""
        env = {"RAY_ADDRESS": self.address, "EMBEDDING_RAY_APP": app}
        self._run("delete", env, self.log_dir / f"ray-deploy-{app}.log")

    @contextlib.contextmanager
    def service(self, app: str, images_dir: Path, **extra: str) -> Iterator[EmbeddingService]:
        """:meth:`deploy` for the time of a ``with`` block, then :meth:`delete`."""
        service = self.deploy(app, images_dir, **extra)
        try:
            yield service
        finally:
            self.delete(app)

    def stop(self) -> None:
        for process in [*reversed(self.workers), self.head]:
            stop(process, timeout=30)


def _cmdline(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())
    return ""
