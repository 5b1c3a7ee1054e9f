"""One `dyimages reindex` at a time: the lock on the real RabbitMQ, for the embedded folder and the server.

The first reindex is this test holding the lock (:func:`reindex_lock`, the code a reindex runs); the second is
a real `dyimages reindex` process. It must refuse with one line before touching the store: the embedded
folder stays empty, and the server (the Qdrant REST stand-in of testkit, named as such: no Qdrant server
runs here) receives no request at all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dyimages_common.process import exit_codes
from dyimages_common.settings import RabbitSettings, load_settings
from search_app.ops.reindex_lock import ReindexRunning, reindex_lock
from testkit.cli_process import run_dyimages
from testkit.procs import free_port
from testkit.qdrant_rest import QdrantRestStandIn

pytestmark = pytest.mark.integration

REFUSAL = "another `dyimages reindex` is running"


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_a_second_reindex_refuses_with_one_line_on_the_embedded_engine(
    rabbit_environment: dict[str, str], tmp_path: Path
) -> None:
    folder = tmp_path / "qdrant"
    env = {
        **rabbit_environment,
        "QDRANT_PATH": str(folder),
        "EMBEDDING_SERVICE_URL": f"http://127.0.0.1:{free_port()}",  # never reached
        "IMAGES_DIR": str(tmp_path / "images"),
    }
    with reindex_lock(load_settings(RabbitSettings)):
        for args in (["reindex"], ["reindex", "--finish"]):
            refused = run_dyimages(env, *args)
            assert refused.returncode == exit_codes.REFUSED, refused.stderr
            assert REFUSAL in one_error_line(refused)
    assert not folder.exists() or not any(folder.iterdir())  # the store was never opened


def test_a_second_reindex_refuses_with_one_line_on_the_server(rabbit_environment: dict[str, str]) -> None:
    with QdrantRestStandIn() as server:
        env = {
            **rabbit_environment,
            "QDRANT_PATH": "",
            "QDRANT_HOST": "127.0.0.1",
            "QDRANT_PORT": str(server.port),
            "EMBEDDING_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        }
        with reindex_lock(load_settings(RabbitSettings)):
            refused = run_dyimages(env, "reindex")
        assert refused.returncode == exit_codes.REFUSED, refused.stderr
        assert REFUSAL in one_error_line(refused)
        assert server.requests == []  # nothing asked of the store


HOLD_AND_WAIT = """
import sys, time
from dyimages_common.settings import RabbitSettings, load_settings
from search_app.ops.reindex_lock import reindex_lock
with reindex_lock(load_settings(RabbitSettings)):
    print("held", flush=True)
    time.sleep(600)
"""


def test_a_reindex_killed_frees_the_lock_and_one_that_ends_too(rabbit_environment: dict[str, str]) -> None:
    settings = load_settings(RabbitSettings)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_AND_WAIT], env={**os.environ, **rabbit_environment}, stdout=subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"held"
        with pytest.raises(ReindexRunning), reindex_lock(settings):
            pass
        holder.send_signal(signal.SIGKILL)  # no clean-up at all: the broker sees the connection go
        holder.wait(timeout=30)
    finally:
        holder.kill()
    deadline = time.monotonic() + 30
    while True:
        try:
            with reindex_lock(settings):
                break
        except ReindexRunning:
            assert time.monotonic() < deadline, "the lock of a killed reindex was not freed"
            time.sleep(0.2)
    with reindex_lock(settings):  # the one just released is free again at once
        pass


def test_rabbitmq_down_is_one_line_and_exit_3(tmp_path: Path) -> None:
    env = {"RABBITMQ_HOST": "127.0.0.1", "RABBITMQ_PORT": str(free_port()), "QDRANT_PATH": str(tmp_path / "qdrant")}
    result = run_dyimages(env, "reindex")
    assert result.returncode == exit_codes.SERVICE_DOWN, result.stderr
    assert "RabbitMQ at" in one_error_line(result)
