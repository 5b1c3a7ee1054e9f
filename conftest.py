"""Fixtures every test folder shares. The services are real: RabbitMQ on 127.0.0.1:5672 (each test
gets its own queues), the embedding service as a LitServe process with a tiny random-weight OpenCLIP
model, and Qdrant in embedded on-disk mode in a temporary folder."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.embedding import EmbeddingService, run_embedding_service
from testkit.http_server import ImageServer
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name


@pytest.fixture
def images_dir(tmp_path: Path) -> Path:
    path = tmp_path / "images"
    path.mkdir()
    return path


@pytest.fixture
def qdrant_path(tmp_path: Path) -> Path:
    return tmp_path / "qdrant"


@pytest.fixture
def rabbit_queue() -> Iterator[str]:
    """A queue name of this test's own on the real broker; its topology is deleted afterwards."""
    require_rabbitmq()
    name = unique_queue_name()
    yield name
    delete_topology(name)


@pytest.fixture
def rabbit_environment(rabbit_queue: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = rabbit_env(rabbit_queue)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    with ImageServer() as server:
        yield server


@pytest.fixture(scope="session")
def shared_images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The images folder of the session-wide embedding service."""
    return tmp_path_factory.mktemp("shared-images")


@pytest.fixture(scope="session")
def embedding_service(shared_images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingService]:
    """One real embedding service for the whole session, serving ``shared_images_dir``."""
    with run_embedding_service(shared_images_dir, tmp_path_factory.mktemp("logs")) as service:
        yield service
