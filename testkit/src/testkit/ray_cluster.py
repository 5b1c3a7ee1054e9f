"""A real Ray cluster on this machine (a head and worker nodes, each its own ``ray start`` process tree)
and the embedding service deployed on it by ``python -m embedding.ray_serve``.

Every node is a real Ray node: the head runs ``python -m embedding.ray_serve head`` (``ray start
--head --block``: GCS, raylet, the Serve controller, proxy and metrics hub), each worker ``ray start
--address ... --block`` as a separate process group. The nodes stay on loopback addresses (127.0.0.2
for the head, .3, .4 ... for workers: see :mod:`embedding.ray_serve.compat`), every port is picked
free, the object store is small and the dashboard is off, so a cluster fits a busy 2-core machine.
Stopping signals each node's own process group; nothing is stopped by name.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from embedding.ray_serve.compat import HEAD_METRIC_PORT_ENV, NODE_ENV, loopback_node_ip, replica_process_title
from embedding.ray_serve.settings import APP_NAME, DEPLOYMENT_NAME
from testkit.embedding import EmbeddingService, embedding_env
from testkit.procs import free_port, stop, wait_http_ok

OBJECT_STORE_BYTES = 80 * 1024 * 1024  # Ray's floor is 75 MiB; nothing big travels through it here
NODE_START_TIMEOUT_S = 180.0


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _node_options(cpus: int) -> list[str]:
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
            [*command, *_node_options(cpus)],
            env={**os.environ, **NODE_ENV},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(process)
        self.wait_for_nodes(len(self.workers) + 1)
        return process

    def wait_for_nodes(self, count: int, timeout: float = NODE_START_TIMEOUT_S) -> None:
        """Wait until ``count`` nodes are alive (``ray list nodes`` needs the dashboard: the raylets' sockets)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.alive_nodes() >= count:
                return
            for process in [self.head, *self.workers]:
                if process.poll() is not None:
                    raise RuntimeError(f"a Ray node exited with {process.returncode} (logs in {self.log_dir})")
            time.sleep(1.0)
        raise TimeoutError(f"{count} Ray nodes not up after {timeout} s (logs in {self.log_dir})")

    def alive_nodes(self) -> int:
        """Raylets running under this cluster's processes (each node runs exactly one)."""
        return sum(1 for p in self.processes() if _name(p) == "raylet")

    def processes(self) -> list[psutil.Process]:
        """Every process of every node (the node processes and all their descendants)."""
        found = []
        for node in [self.head, *self.workers]:
            with contextlib.suppress(psutil.NoSuchProcess):
                root = psutil.Process(node.pid)
                found += [root, *root.children(recursive=True)]
        return found

    def replica_pids(self) -> list[int]:
        """The embedding replicas' worker processes (by their process title)."""
        title = replica_process_title(APP_NAME, DEPLOYMENT_NAME)
        return [p.pid for p in self.processes() if _cmdline(p).startswith(title)]

    def deploy(self, images_dir: Path, **extra: str) -> EmbeddingService:
        """Deploy (or redeploy, replacing the replicas) the embedding service with these settings."""
        env = {
            **embedding_env(images_dir, self.serve_port),
            "RAY_ADDRESS": self.address,
            "EMBEDDING_RAY_MIN_REPLICAS": "1",
            "EMBEDDING_RAY_MAX_REPLICAS": str(len(self.workers) + 1),
            **extra,
        }
        log_path = self.log_dir / "ray-deploy.log"
        with log_path.open("ab") as log:
            subprocess.run(
                [sys.executable, "-m", "embedding.ray_serve", "deploy"],
                env={**os.environ, **env},
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=NODE_START_TIMEOUT_S,
            )
        wait_http_ok(f"{self.url}/health", timeout=NODE_START_TIMEOUT_S, process=self.head)
        return EmbeddingService(url=self.url, env=env, log_path=log_path, pid=self.head.pid)

    def stop(self) -> None:
        for process in [*reversed(self.workers), self.head]:
            stop(process, timeout=30)


def _name(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return process.name()
    return ""


def _cmdline(process: psutil.Process) -> str:
    with contextlib.suppress(psutil.Error):
        return " ".join(process.cmdline())
    return ""


@contextlib.contextmanager
def ray_cluster(
    images_dir: Path, log_dir: Path, *, workers: int = 1, head_cpus: int = 1, worker_cpus: int = 1, **extra: str
) -> Iterator[RayCluster]:
    """A head (``python -m embedding.ray_serve head``, the service deployed with ``extra`` settings)
    and ``workers`` worker nodes; everything stopped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="dyray-", dir="/tmp"))  # Ray's socket paths must stay short
    log_dir.mkdir(parents=True, exist_ok=True)
    gcs_port, serve_port = free_port(), free_port()
    head_ip = loopback_node_ip(0)
    env = {
        **os.environ,
        **embedding_env(images_dir, serve_port),
        "EMBEDDING_RAY_MIN_REPLICAS": "1",
        "EMBEDDING_RAY_MAX_REPLICAS": str(workers + 1),
        **{name: str(free_port()) for name in HEAD_METRIC_PORT_ENV},
        **extra,
    }
    head_options = [
        "--port",
        str(gcs_port),
        "--node-ip-address",
        head_ip,
        "--temp-dir",
        str(root),
        "--ray-client-server-port",
        str(free_port()),
        "--dashboard-port",
        str(free_port()),
        *_node_options(head_cpus),
    ]
    log = open(log_dir / "ray-head.log", "ab")  # noqa: SIM115 - lives with the node
    head = subprocess.Popen(
        [sys.executable, "-m", "embedding.ray_serve", "head", *head_options],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    cluster = RayCluster(f"{head_ip}:{gcs_port}", head, serve_port, root, log_dir)
    try:
        cluster.wait_for_nodes(1)
        for _ in range(workers):
            cluster.add_worker(worker_cpus)
        wait_http_ok(f"{cluster.url}/health", timeout=NODE_START_TIMEOUT_S, process=head)
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
