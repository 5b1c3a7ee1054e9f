"""Start-up and shut-down of the real service process: clear configuration errors, no orphans."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from testkit.embedding import embedding_env
from testkit.procs import free_port, start_module, stop, wait_http_ok

pytestmark = pytest.mark.integration


def test_sigterm_stops_every_worker_process(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "images").mkdir()
    env = embedding_env(tmp_path / "images", port)
    process = start_module("embedding", env=env, log_path=tmp_path / "embedding.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", timeout=120, process=process)
        children = psutil.Process(process.pid).children(recursive=True)
        names = " ".join(" ".join(child.cmdline()) for child in children)
        assert "multiprocessing" in names  # the spawned model worker is among them
        os.kill(process.pid, signal.SIGTERM)  # the main process only, as `docker compose stop` does
        assert process.wait(timeout=90) == 0
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left running after SIGTERM: {[c.pid for c in alive]}"
    finally:
        stop(process)


def test_a_model_that_cannot_load_stops_the_service_with_an_error(tmp_path: Path) -> None:
    checkpoint = tmp_path / "broken.pt"
    checkpoint.write_bytes(b"not a checkpoint")
    port = free_port()
    env = embedding_env(tmp_path, port, MODEL_PRETRAINED=str(checkpoint))
    log_path = tmp_path / "embedding.log"
    process = start_module("embedding", env=env, log_path=log_path)
    try:
        assert process.wait(timeout=150) == 1
        log = log_path.read_text()
        assert "the model could not be loaded" in log
        assert "a model worker died" in log
    finally:
        stop(process)


def _start(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "embedding"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("EMBEDDING_PORT", "eighty", "EMBEDDING_PORT='eighty'"),
        ("MODEL_NAME", "no-such-model", "MODEL_NAME='no-such-model'"),
        ("MODEL_CONFIG", "/nowhere/model.json", "MODEL_CONFIG='/nowhere/model.json'"),
    ],
)
def test_a_bad_setting_stops_start_up_with_one_clear_line(
    tmp_path: Path, variable: str, value: str, expected: str
) -> None:
    env = embedding_env(tmp_path, free_port(), **{variable: value})
    result = _start(env, tmp_path)
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.startswith("configuration error")]
    assert len(lines) == 1, result.stderr
    assert expected in lines[0]
    assert not (tmp_path / "client.py").exists()
