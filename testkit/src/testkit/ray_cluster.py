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
from collections.abc import Iterator
from pathlib import Path

from embedding.ray_serve.compat import HEAD_METRIC_PORT_ENV, loopback_node_ip
from testkit.embedding import embedding_env
from testkit.procs import free_port, wait_http_ok
from testkit.ray_nodes import (
    DEFAULT_APP,
    NODE_START_TIMEOUT_S,
    START_ATTEMPTS,
    START_NICE,
    TEST_REPLICAS,
    NodeFailed,
    RayCluster,
    node_options,
    prioritise,
)

__all__ = ["DEFAULT_APP", "NodeFailed", "RayCluster", "ray_cluster"]


@contextlib.contextmanager
def ray_cluster(
    images_dir: Path, log_dir: Path, *, workers: int = 1, head_cpus: int = 1, worker_cpus: int = 1, **extra: str
) -> Iterator[RayCluster]:
    """A head (``python -m embedding.ray_serve head``, the service deployed with ``extra`` settings)
    and ``workers`` worker nodes; everything stopped afterwards.

    A node that fails to start is started again with the whole cluster, up to :data:`START_ATTEMPTS`
    times: on a loaded 2-core machine a raylet sometimes gives up on its agents, which import slowly
    from a cold page cache (a fixed wait in Ray 2.60); the failure and its logs are printed.
    """
    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            cluster = _start(images_dir, log_dir / f"attempt-{attempt}", workers, head_cpus, worker_cpus, extra)
        except NodeFailed as failed:
            if attempt == START_ATTEMPTS:
                raise
            print(f"the Ray cluster did not start, starting it again: {failed}", flush=True)
            continue
        try:
            yield cluster
        finally:
            cluster.stop()
            shutil.rmtree(cluster.root, ignore_errors=True)
        return


def _start(
    images_dir: Path, log_dir: Path, workers: int, head_cpus: int, worker_cpus: int, extra: dict[str, str]
) -> RayCluster:
    root = Path(tempfile.mkdtemp(prefix="dyray-", dir="/tmp"))  # Ray's socket paths must stay short
    log_dir.mkdir(parents=True, exist_ok=True)
    gcs_port, serve_port = free_port(), free_port()
    head_ip = loopback_node_ip(0)
    env = {
        **os.environ,
        **embedding_env(images_dir, serve_port),
        **TEST_REPLICAS,
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
        *node_options(head_cpus),
    ]
    log = open(log_dir / "ray-head.log", "ab")  # noqa: SIM115 - lives with the node
    head = subprocess.Popen(
        [sys.executable, "-m", "embedding.ray_serve", "head", *head_options],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    prioritise(head.pid, START_NICE)
    cluster = RayCluster(f"{head_ip}:{gcs_port}", head, serve_port, root, log_dir)
    try:
        cluster.wait_for_nodes(1)
        for _ in range(workers):
            cluster.add_worker(worker_cpus)
        try:
            wait_http_ok(f"{cluster.url}/health", timeout=NODE_START_TIMEOUT_S, process=head)
        except (RuntimeError, TimeoutError) as exc:
            raise NodeFailed(f"the service on Ray did not become healthy: {exc}\n{cluster.log_tails()}") from exc
    except BaseException:
        cluster.stop()
        shutil.rmtree(root, ignore_errors=True)
        raise
    cluster.settle()
    return cluster
