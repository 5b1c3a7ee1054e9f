"""Fixtures of the indexer's tests."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.messaging.rabbit import REASON_HEADER, Topology, queue_depths
from dyimages_common.settings import RabbitSettings, load_settings
from testkit.embedding import EmbeddingService
from testkit.messages import publish, stored_image
from testkit.procs import start_module, stop
from testkit.rabbit import AMQP_URL
from testkit.stores import raw_points

# Fast, small batches so a few dozen messages make several batches, and quick retries and idle exit.
INDEXER_TEST_ENV = {
    "INDEXER_BATCH_SIZE": "8",
    "INDEXER_BATCH_WAIT_MS": "50",
    "INDEXER_IDLE_EXIT_S": "1",
    "INDEXER_RETRY_MAX_S": "1",
    "INDEXER_PROGRESS_INTERVAL_S": "0.2",
    "INDEXER_SHUTDOWN_GRACE_S": "10",
    "LOG_LEVEL": "INFO",
}


@dataclass
class IndexerRig:
    """Everything an indexer process of one test needs: its environment, queue and Qdrant folder."""

    env: dict[str, str]
    qdrant_path: Path
    images_dir: Path
    log_dir: Path

    @property
    def rabbit(self) -> RabbitSettings:
        return load_settings(RabbitSettings, rabbitmq_host="127.0.0.1", rabbitmq_queue=self.env["RABBITMQ_QUEUE"])

    def publish(self, bodies: list[ImageDownloaded | bytes]) -> None:
        asyncio.run(publish(self.rabbit, bodies))

    def run(self, *, timeout: float = 90, **extra: str) -> subprocess.CompletedProcess[str]:
        """``python -m indexer --exit-when-idle`` to completion."""
        return subprocess.run(
            [sys.executable, "-m", "indexer", "--exit-when-idle"],
            env={**os.environ, **self.env, **extra},
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self, *args: str, name: str = "indexer", **extra: str) -> tuple[subprocess.Popen[bytes], Path]:
        log_path = self.log_dir / f"{name}.log"
        return start_module("indexer", *args, env={**self.env, **extra}, log_path=log_path), log_path

    def depths(self) -> dict[str, int]:
        return asyncio.run(queue_depths(self.rabbit))

    def dead_letters(self) -> list[tuple[bytes, dict[str, Any]]]:
        return asyncio.run(_drain(Topology.for_queue(self.env["RABBITMQ_QUEUE"]).dead_letter_queue))

    def points(self, qdrant_path: Path | None = None) -> list[Any]:
        """Every point (payload and vector), read once the indexer has exited (one process per folder)."""
        with raw_points(qdrant_path or self.qdrant_path) as client:
            return client.every_point()

    def dead_reasons(self) -> dict[bytes, str]:
        """Drain the dead-letter queue: body -> reason header."""
        return {body: headers.get(REASON_HEADER) for body, headers in self.dead_letters()}

    def images(self, first_seed: int, count: int) -> list[ImageDownloaded]:
        """``count`` small stored JPEGs (the downloader's way) and their messages."""
        return [stored_image(self.images_dir, first_seed + seed) for seed in range(count)]

    @staticmethod
    def wait_for_log(
        log_path: Path, pattern: str, timeout: float = 60, process: subprocess.Popen[bytes] | None = None
    ) -> re.Match[str]:
        """Poll a process's log until ``pattern`` appears; fail if the process dies first."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = log_path.read_text(errors="replace") if log_path.exists() else ""
            if match := re.search(pattern, text):
                return match
            if process is not None and process.poll() is not None:
                raise AssertionError(f"process exited ({process.returncode}) before {pattern!r}:\n{text[-3000:]}")
            time.sleep(0.05)
        raise AssertionError(f"{pattern!r} not logged in {timeout} s:\n{log_path.read_text(errors='replace')[-3000:]}")

    @staticmethod
    def wait_for_exit(process: subprocess.Popen[bytes], log_path: Path, timeout: float = 90) -> int:
        try:
            return process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            stop(process, timeout=5)
            raise AssertionError(
                f"indexer did not exit in {timeout} s:\n{log_path.read_text(errors='replace')[-3000:]}"
            ) from None


async def _drain(queue_name: str) -> list[tuple[bytes, dict[str, Any]]]:
    messages = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(queue_name, passive=True)
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            messages.append((message.body, dict(message.headers)))
    return messages


@pytest.fixture
def rig(
    rabbit_environment: dict[str, str],
    embedding_service: EmbeddingService,
    shared_images_dir: Path,
    tmp_path: Path,
) -> IndexerRig:
    """An indexer set-up on this test's own queue and Qdrant folder, using the session's embedding service."""
    qdrant_path = tmp_path / "qdrant"
    env = {
        **rabbit_environment,
        **INDEXER_TEST_ENV,
        "EMBEDDING_SERVICE_URL": embedding_service.url,
        "QDRANT_PATH": str(qdrant_path),
    }
    log_dir = tmp_path / "logs"
    log_dir.mkdir()
    return IndexerRig(env=env, qdrant_path=qdrant_path, images_dir=shared_images_dir, log_dir=log_dir)


@pytest.fixture(scope="session")
def many_images(shared_images_dir: Path) -> list[ImageDownloaded]:
    """300 stored 320x240 JPEGs: enough work that an indexer is caught mid-run."""
    return [stored_image(shared_images_dir, 100_000 + seed, size=(320, 240)) for seed in range(300)]


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    """Processes a test starts; whatever is still running at the end is stopped (no orphans)."""
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        stop(process, timeout=10)
