"""The proxy's fixtures: a small library indexed by the real indexer, the real app over it, and the
proxy (deploy/proxy/entrypoint.sh with Debian's nginx) started in front of it per test."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from testkit.browser import streamlit_app
from testkit.embedding import EmbeddingService
from testkit.indexed_library import Library, index_pictures, library_env
from testkit.proxy import LIBRARY, MAX_IMAGE_BYTES, METRICS_PORT, Proxy, running_proxy
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name


@pytest.fixture(scope="session")
def proxy_library(
    tmp_path_factory: pytest.TempPathFactory, shared_images_dir: Path, embedding_service: EmbeddingService
) -> Iterator[Library]:
    """Four images indexed by the real indexer; two of them with HTML in their URLs."""
    require_rabbitmq()
    queue = unique_queue_name("proxy")
    tmp = tmp_path_factory.mktemp("proxy-library")
    env = library_env(
        images_dir=shared_images_dir,
        qdrant_path=tmp / "qdrant",
        state_db=tmp / "state.sqlite3",
        queue_env=rabbit_env(queue),
        embedding_url=embedding_service.url,
    )
    library = Library(env=env, images_dir=shared_images_dir, qdrant_path=tmp / "qdrant", state_db=tmp / "state.sqlite3")
    try:
        index_pictures(library, LIBRARY, tmp / "indexer.log")
        yield library
    finally:
        delete_topology(queue)


@pytest.fixture(scope="session")
def app_upstream(proxy_library: Library, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (``python -m search_app``) over the library, a 3 MiB upload limit; yields host:port."""
    env = {
        **proxy_library.env,
        "APP_TOP_K": "4",
        "APP_THUMBNAIL_PX": "96",
        "MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "METRICS_PORT": str(METRICS_PORT),
    }
    with streamlit_app(env, tmp_path_factory.mktemp("proxy-app") / "streamlit.log") as url:
        yield url.removeprefix("http://")


@pytest.fixture
def proxy(app_upstream: str) -> Callable[..., contextlib.AbstractContextManager[Proxy]]:
    """Start a proxy in front of the app: ``with proxy(PROXY_UPLOAD_RATE="1r/m") as p: ...``. Plain
    HTTP serves the UI unless a test says otherwise (PROXY_ALLOW_PLAIN_HTTP=false, or a certificate)."""
    defaults = {"MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES), "PROXY_ALLOW_PLAIN_HTTP": "true"}
    return lambda **settings: running_proxy(app_upstream, **{**defaults, **settings})
