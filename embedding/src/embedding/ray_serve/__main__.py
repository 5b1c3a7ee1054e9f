"""``python -m embedding.ray_serve head|deploy``: the embedding service on a Ray cluster.

* ``head [RAY START OPTIONS]``: starts a Ray head on this machine (``ray start --head --block`` with
  the options given), deploys the application on it and runs until SIGTERM or SIGINT, which stop the
  head and every Ray process it started. What compose's ``ray-head`` runs; workers join with
  ``ray start --address <head>:6379 --block``.
* ``deploy``: deploys (or updates) the application on the running cluster at ``RAY_ADDRESS`` and exits.
* ``delete``: removes the application ``EMBEDDING_RAY_APP`` from that cluster (its replicas stop).

Both read the embedding service's settings from the environment (``EMBEDDING_PORT`` is the Serve
proxy's port); a wrong value exits 2 with one line, a deployment that fails exits 1.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from types import FrameType

import typer

from dyimages_common.process.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from embedding.ray_serve.compat import NODE_ENV
from embedding.ray_serve.settings import RaySettings

log = logging.getLogger("embedding.ray_serve")

HEAD_DEFAULTS = ("--port", "6379", "--num-cpus", "0", "--include-dashboard", "false", "--disable-usage-stats")
CONNECT_TIMEOUT_S = 600.0  # a head on a busy host registers its node minutes after it started


def _ray_cli() -> str:
    return str(Path(sys.executable).with_name("ray"))


def _wait_for_gcs(address: str, head: subprocess.Popen[bytes], deadline: float) -> None:
    """Wait until our head's GCS port accepts connections (Ray's own connect retries for minutes)."""
    host, port = address.rsplit(":", 1)
    while True:
        if head.poll() is not None:
            raise RuntimeError(f"the Ray head exited with {head.returncode} before it accepted a connection")
        with contextlib.suppress(OSError), socket.create_connection((host, int(port)), timeout=1.0):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the Ray head at {address} did not accept a connection in time")
        time.sleep(1.0)


def _connect(address: str, head: subprocess.Popen[bytes] | None, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Connect this process to the cluster, waiting for a head that is still starting (``head``: ours)."""
    import ray

    deadline = time.monotonic() + timeout_s
    if head is not None:
        _wait_for_gcs(address, head, deadline)
    while True:
        try:
            ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
            return
        except ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1.0)


def deploy(settings: RaySettings, head: subprocess.Popen[bytes] | None = None) -> int:
    """Deploy on the cluster at RAY_ADDRESS; 0 once every replica has loaded the model, 1 otherwise."""
    from embedding.ray_serve.app import deploy as deploy_app

    try:
        _connect(settings.ray_address, head)
        deploy_app(settings)
    except Exception:
        log.exception("deploying the embedding service on Ray failed")
        return 1
    log.info("serving on Ray: http://%s:%d", settings.embedding_host, settings.embedding_port)
    return 0


def delete(settings: RaySettings) -> int:
    """Remove the application from the cluster at RAY_ADDRESS; 0 once its replicas are gone."""
    from ray import serve

    try:
        _connect(settings.ray_address, None)
        serve.delete(settings.embedding_ray_app)
    except Exception:
        log.exception("removing the embedding service from Ray failed")
        return 1
    return 0


def head(settings: RaySettings, ray_start_options: list[str]) -> int:
    """Start a Ray head with ``ray_start_options`` over :data:`HEAD_DEFAULTS`, deploy, wait for a signal."""
    given = {option.split("=")[0] for option in ray_start_options if option.startswith("--")}
    defaults: list[str] = []
    for index in range(0, len(HEAD_DEFAULTS), 2):
        if HEAD_DEFAULTS[index] not in given:
            defaults += HEAD_DEFAULTS[index : index + 2]
    command = [_ray_cli(), "start", "--head", "--block", *defaults, *ray_start_options]
    ray_head = subprocess.Popen(command, env={**NODE_ENV, **os.environ})

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: stopping the Ray head", signum)
        ray_head.terminate()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    port = next((v for o, v in itertools.pairwise(command) if o == "--port"), "6379")
    address = next((v for o, v in itertools.pairwise(command) if o == "--node-ip-address"), "127.0.0.1")
    code = deploy(settings.model_copy(update={"ray_address": f"{address}:{port}"}), ray_head)
    if code != 0:
        ray_head.terminate()
        ray_head.wait()
        return code
    returned = ray_head.wait()
    return 0 if returned in (0, -signal.SIGTERM, 128 + signal.SIGTERM) else 1


app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


@app.command("deploy")
def _deploy() -> None:
    """Deploy the embedding service on the Ray cluster at RAY_ADDRESS and exit (0 once it serves)."""
    settings = settings_or_exit(RaySettings)
    configure_logging("embedding", settings.log_level, settings.log_format)
    raise typer.Exit(deploy(settings))


@app.command("delete")
def _delete() -> None:
    """Remove the application EMBEDDING_RAY_APP from the Ray cluster at RAY_ADDRESS."""
    settings = settings_or_exit(RaySettings)
    configure_logging("embedding", settings.log_level, settings.log_format)
    raise typer.Exit(delete(settings))


@app.command(
    "head", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
)
def _head(context: typer.Context) -> None:
    """Start a Ray head (extra options go to `ray start`), deploy the embedding service on it and run
    until SIGTERM or SIGINT."""
    settings = settings_or_exit(RaySettings)
    configure_logging("embedding", settings.log_level, settings.log_format)
    raise typer.Exit(head(settings, list(context.args)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
