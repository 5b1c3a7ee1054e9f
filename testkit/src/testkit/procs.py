"""Starting real service processes for tests and benchmarks, and stopping them without orphans."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_module(
    module: str,
    *args: str,
    env: Mapping[str, str],
    log_path: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``python -m module args`` in its own process group, with ``env`` over this environment."""
    output = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - lives with the process
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
    """Send ``sig`` to the process, wait; then kill its whole group so no worker is left behind."""
    if process.poll() is None:
        try:
            os.kill(process.pid, sig)
            process.wait(timeout=timeout)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    return process.wait()


def wait_http_ok(url: str, timeout: float = 120.0, process: subprocess.Popen[bytes] | None = None) -> None:
    """Poll ``url`` until it answers 200; fail early if ``process`` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} was ready")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"{url} not ready after {timeout} s")


@contextlib.contextmanager
def serving_module(
    module: str, env: Mapping[str, str], log_path: Path, *, health: str, host_var: str, port_var: str
) -> Iterator[str]:
    """``python -m module`` serving on 127.0.0.1 and a free port (``host_var``/``port_var`` say where),
    until ``health`` answers 200; yields its base URL and stops it afterwards."""
    port = free_port()
    process = start_module(module, env={**env, host_var: "127.0.0.1", port_var: str(port)}, log_path=log_path)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http_ok(f"{url}{health}", timeout=120, process=process)
        yield url
    finally:
        stop(process)
