"""SIGTERM to the real service while requests are in flight: the shutdown path production takes.

``docker compose stop`` sends SIGTERM to the main process of ``python -m embedding``. Every
request then in flight either gets its full answer or a clean error (an HTTP error status or a
closed connection: never a hang, never a truncated answer that parses), and every process of the
service (HTTP servers, model workers, LitServe's manager) exits.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from dyimages_common.embeddings.wire import EMBED_PATH, EmbedResponse
from testkit.embedding import embedding_env
from testkit.images import jpeg
from testkit.procs import free_port, start_module, stop, wait_http_ok
from testkit.storage import store

pytestmark = pytest.mark.integration

REQUESTS = 16
IMAGES_PER_REQUEST = 96


class Outcome:
    """What one request got: its answer's item count, an HTTP error status, or a transport error."""

    def __init__(self) -> None:
        self.items: int | None = None
        self.status: int | None = None
        self.error: Exception | None = None
        self.done = threading.Event()


def _send(url: str, paths: list[str], outcome: Outcome) -> None:
    try:
        response = httpx.post(url, json={"images": [{"path": p} for p in paths]}, timeout=120)
        outcome.status = response.status_code
        if response.status_code == 200:
            outcome.items = len(EmbedResponse.model_validate_json(response.content).vectors)
    except httpx.TransportError as exc:
        outcome.error = exc
    finally:
        outcome.done.set()


def test_sigterm_with_requests_in_flight_answers_or_fails_each_cleanly_and_every_process_exits(
    tmp_path: Path,
) -> None:
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    paths = [store(images_dir, jpeg(seed, (160, 120))) for seed in range(IMAGES_PER_REQUEST)]
    port = free_port()
    env = embedding_env(images_dir, port, EMBEDDING_MAX_BATCH_SIZE="8")
    process = start_module("embedding", env=env, log_path=tmp_path / "embedding.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", timeout=180, process=process)
        family = psutil.Process(process.pid).children(recursive=True)
        outcomes = [Outcome() for _ in range(REQUESTS)]
        threads = [
            threading.Thread(target=_send, args=(f"http://127.0.0.1:{port}{EMBED_PATH}", paths, outcome), daemon=True)
            for outcome in outcomes
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 120
        while not any(outcome.done.is_set() for outcome in outcomes):  # the service is busy with them
            assert time.monotonic() < deadline, "no request was answered in 120 s"
            time.sleep(0.01)
        in_flight = sum(not outcome.done.is_set() for outcome in outcomes)

        os.kill(process.pid, signal.SIGTERM)  # the main process only, as `docker compose stop` does
        assert process.wait(timeout=90) == 0

        for thread in threads:
            thread.join(timeout=30)
        assert all(outcome.done.is_set() for outcome in outcomes), "a request hangs after the service stopped"
        _, alive = psutil.wait_procs(family, timeout=15)
        assert alive == [], f"left running after SIGTERM: {[(p.pid, p.name()) for p in alive]}"
    finally:
        stop(process)

    assert in_flight > 0, "SIGTERM came when every request was already answered: nothing was in flight"
    for outcome in outcomes:
        if outcome.status == 200:
            assert outcome.items == IMAGES_PER_REQUEST  # complete answers only
        else:  # a clean error: an HTTP error status, or the connection closed
            assert (outcome.status is not None and outcome.status >= 500) or outcome.error is not None
