"""Fixtures of the app's tests: an image library indexed by the real indexer and embedding service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.embedding import EmbeddingService, other_weights_service
from testkit.indexed_library import Library, PictureSpec, index_pictures, library_env, record_downloads
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name

PHOTOS = "https://photos.example"
ART = "https://www.art.example.org"

LIBRARY = [
    *(PictureSpec(seed, (f"{PHOTOS}/{seed}.jpg",)) for seed in range(7001, 7009)),
    PictureSpec(7009, (f"{ART}/7009.png",), fmt="png"),
    PictureSpec(7010, (f"{ART}/7010.jpg",), size=(320, 240)),
    PictureSpec(7011, (f"{ART}/7011.jpg",), size=(320, 240)),
    PictureSpec(7012, (f"{PHOTOS}/7012.jpg", "https://mirror.example.net/copy-of-7012.jpg")),
]
FAILED_DOWNLOADS = {f"{PHOTOS}/gone.jpg": "http_404: the server answered 404"}


@pytest.fixture(scope="session")
def session_queue() -> Iterator[str]:
    require_rabbitmq()
    name = unique_queue_name("app")
    yield name
    delete_topology(name)


def new_library(tmp: Path, shared_images_dir: Path, queue: str, embedding: EmbeddingService) -> Library:
    env = library_env(
        images_dir=shared_images_dir,
        qdrant_path=tmp / "qdrant",
        state_db=tmp / "state.sqlite3",
        queue_env=rabbit_env(queue),
        embedding_url=embedding.url,
    )
    return Library(env=env, images_dir=shared_images_dir, qdrant_path=tmp / "qdrant", state_db=tmp / "state.sqlite3")


@pytest.fixture(scope="session")
def library(
    tmp_path_factory: pytest.TempPathFactory,
    shared_images_dir: Path,
    session_queue: str,
    embedding_service: EmbeddingService,
) -> Library:
    """Twelve images from three domains (one reached by two URLs, one PNG, two larger), indexed once.

    Tests must not change it; the Qdrant folder is free between tests.
    """
    tmp = tmp_path_factory.mktemp("library")
    lib = new_library(tmp, shared_images_dir, session_queue, embedding_service)
    index_pictures(lib, LIBRARY, tmp / "indexer.log")
    record_downloads(lib.state_db, lib.pictures, FAILED_DOWNLOADS)
    return lib


@pytest.fixture(scope="session")
def docs_library(tmp_path_factory: pytest.TempPathFactory, shared_images_dir: Path) -> Iterator[Library]:
    """The same twelve images, embedded by weights made from a fixed seed: the examples the docs show are
    then the same on every machine (the suite's own tiny model is drawn at random once per machine)."""
    require_rabbitmq()
    queue = unique_queue_name("app-docs")
    tmp = tmp_path_factory.mktemp("docs-library")
    try:
        with other_weights_service(shared_images_dir, tmp, seed=0) as embedding:
            lib = new_library(tmp, shared_images_dir, queue, embedding)
            index_pictures(lib, LIBRARY, tmp / "indexer.log")
            record_downloads(lib.state_db, lib.pictures, FAILED_DOWNLOADS)
            yield lib
    finally:
        delete_topology(queue)


@pytest.fixture
def library_environment(library: Library, monkeypatch: pytest.MonkeyPatch) -> Library:
    for key, value in library.env.items():
        monkeypatch.setenv(key, value)
    return library


@pytest.fixture
def own_library(
    tmp_path: Path,
    shared_images_dir: Path,
    rabbit_queue: str,
    embedding_service: EmbeddingService,
    monkeypatch: pytest.MonkeyPatch,
) -> Library:
    """A library of this test's own (its own queue and Qdrant folder, empty), in the environment."""
    lib = new_library(tmp_path, shared_images_dir, rabbit_queue, embedding_service)
    for key, value in lib.env.items():
        monkeypatch.setenv(key, value)
    return lib
