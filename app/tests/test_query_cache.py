"""The Redis query cache against a real redis-server, the real embedding service and embedded Qdrant.

Each test keys its entries under its own prefix on the shared server (127.0.0.1:6379) and deletes
them afterwards; a test that needs a Redis that comes and goes starts its own ``redis-server``.
These tests fail, never skip, when Redis is not running.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import redis
import streamlit as st
from prometheus_client import REGISTRY
from streamlit.testing.v1 import AppTest

import search_app
from dyimages_common.embeddings.client import EmbeddingClient, ModelIdentity, ModelInfo
from dyimages_common.store.protocol import ImageStore
from search_app.search import cache as query_cache
from search_app.search.cache import QueryCache, ServiceIdentity
from search_app.search.engine import search
from search_app.search.model import Filters, Hit, Query
from search_app.search.vectors import ServiceEmbedder
from testkit.images import jpeg
from testkit.indexed_library import Library, PictureSpec, index_pictures
from testkit.procs import free_port

pytestmark = pytest.mark.integration

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
REDIS_URL = f"redis://{REDIS_HOST}:{REDIS_PORT}/0"
QUERY = "a red bicycle leaning on a wall"
LOGGER = "search_app.search.cache"
APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")


def require_redis() -> None:
    """Fail (never skip) when Redis is not there: these tests need the real one."""
    try:
        socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=3).close()
    except OSError as exc:
        raise RuntimeError(
            f"Redis is not running on {REDIS_HOST}:{REDIS_PORT}; start it with "
            '`redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no`'
        ) from exc


@pytest.fixture
def prefix() -> Iterator[str]:
    require_redis()
    name = f"test:{uuid.uuid4().hex[:12]}:"
    yield name
    with redis.Redis(host=REDIS_HOST, port=REDIS_PORT) as client:
        for key in client.scan_iter(f"{name}*"):
            client.delete(key)


@dataclass
class CountingEmbedder:
    """The real service embedder, recording which texts and images reached the service."""

    inner: ServiceEmbedder
    texts: list[str] = field(default_factory=list)
    images: int = 0

    def text(self, text: str) -> np.ndarray:
        self.texts.append(text)
        return self.inner.text(text)

    def image(self, data: bytes) -> np.ndarray:
        self.images += 1
        return self.inner.image(data)

    def answered_by(self) -> ModelIdentity | None:
        return self.inner.answered_by()


def lookups() -> dict[tuple[str, str], float]:
    return {
        (kind, outcome): REGISTRY.get_sample_value("dyimages_app_query_cache_total", {"kind": kind, "outcome": outcome})
        or 0.0
        for kind in ("vector", "results")
        for outcome in ("hit", "miss", "unreadable", "unavailable")
    }


def counted_since(before: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    return {key: value - before[key] for key, value in lookups().items() if value != before[key]}


def same_results(hits: list[Hit], expected: list[Hit]) -> bool:
    """The same images in the same order with the same scores (the service's float noise aside)."""
    return [(h.sha256, h.rank) for h in hits] == [(h.sha256, h.rank) for h in expected] and all(
        h.score == pytest.approx(e.score, abs=1e-5) for h, e in zip(hits, expected, strict=True)
    )


@contextlib.contextmanager
def qdrant(library: Library) -> Iterator[ImageStore]:
    client = library.open_index()
    try:
        yield client
    finally:
        client.close()


@contextlib.contextmanager
def parts(library: Library, cache: QueryCache) -> Iterator[tuple[ImageStore, CountingEmbedder, object]]:
    """Qdrant, the counting embedder, and that embedder behind the cache."""
    with qdrant(library) as client, EmbeddingClient(library.env["EMBEDDING_SERVICE_URL"]) as embedding:
        counting = CountingEmbedder(ServiceEmbedder(embedding))
        yield client, counting, cache.embedder(counting, ServiceIdentity(embedding))


def test_a_repeated_query_comes_from_redis_and_equals_the_uncached_answer(library: Library, prefix: str) -> None:
    cache = QueryCache(REDIS_URL, store=str(library.qdrant_path), prefix=prefix)
    with parts(library, cache) as (client, counting, cached):
        before = lookups()
        first = search(client, cached, Query(text=QUERY), limit=5, cache=cache)
        assert counted_since(before) == {("vector", "miss"): 1, ("results", "miss"): 1}
        before = lookups()
        # The same text with other spacing is the same query.
        again = search(client, cached, Query(text=f"  {QUERY.replace(' ', '   ')} "), limit=5, cache=cache)
        assert counted_since(before) == {("vector", "hit"): 1, ("results", "hit"): 1}
        uncached = search(client, counting.inner, Query(text=QUERY), limit=5)
        assert counting.texts == [QUERY]  # the service saw the text once
        assert first == again  # exactly: the page itself came back
        assert same_results(first, uncached)
        assert len(first) == 5

        # Another page, other filters: other result keys, the same cached vector.
        before = lookups()
        page_two = search(client, cached, Query(text=QUERY), limit=5, offset=5, cache=cache)
        only_png = Filters(content_types=("image/png",))
        pngs = search(client, cached, Query(text=QUERY, filters=only_png), limit=5, cache=cache)
        assert counted_since(before) == {("vector", "hit"): 2, ("results", "miss"): 2}
        assert [hit.rank for hit in page_two] == [6, 7, 8, 9, 10]
        assert {hit.content_type for hit in pngs} == {"image/png"}
        assert counting.texts == [QUERY]


class CountingInfo:
    """The real embedding client, counting its /info requests."""

    def __init__(self, client: EmbeddingClient) -> None:
        self.client, self.asked = client, 0

    def info(self) -> ModelInfo:
        self.asked += 1
        return self.client.info()


def test_the_model_identity_is_asked_again_only_after_its_ttl(library: Library) -> None:
    with EmbeddingClient(library.env["EMBEDDING_SERVICE_URL"]) as embedding:
        counting = CountingInfo(embedding)
        identity = ServiceIdentity(counting, ttl_s=0.5)  # type: ignore[arg-type]
        assert identity() == identity() == ModelIdentity("dy-tiny", "none")
        assert counting.asked == 1
        time.sleep(0.6)
        identity()
        assert counting.asked == 2


def test_a_quoted_negative_phrase_is_cached_with_its_spacing_normalised(library: Library, prefix: str) -> None:
    cache = QueryCache(REDIS_URL, store=str(library.qdrant_path), prefix=prefix)
    with parts(library, cache) as (client, counting, cached):
        first = search(client, cached, Query(text='beach -"parked   cars"'), limit=5, cache=cache)
        before = lookups()
        again = search(client, cached, Query(text='beach  -" parked cars "'), limit=5, cache=cache)
    assert counted_since(before) == {("vector", "hit"): 2, ("results", "hit"): 1}
    assert counting.texts == ["beach", "parked   cars"]
    assert again == first


def test_pages_expire_after_the_results_ttl_and_vectors_after_a_week(library: Library, prefix: str) -> None:
    cache = QueryCache(REDIS_URL, store=str(library.qdrant_path), prefix=prefix, results_ttl_s=7)
    with parts(library, cache) as (client, _, cached):
        search(client, cached, Query(text=QUERY), limit=5, cache=cache)
    with redis.Redis(host=REDIS_HOST, port=REDIS_PORT) as server:
        ttls = {key.decode().split(":")[-2]: server.ttl(key) for key in server.scan_iter(f"{prefix}*")}
    assert set(ttls) == {"res", "vec"}
    assert 0 < ttls["res"] <= 7
    assert query_cache.VECTOR_TTL_S - 60 < ttls["vec"] <= query_cache.VECTOR_TTL_S == 7 * 24 * 3600


def test_indexing_a_new_image_invalidates_the_cached_pages(own_library: Library, prefix: str, tmp_path: Path) -> None:
    library = own_library
    index_pictures(
        library,
        [PictureSpec(seed, (f"https://c.example/{seed}.jpg",)) for seed in (7101, 7102, 7103)],
        tmp_path / "one.log",
    )
    newcomer = PictureSpec(7104, ("https://c.example/7104.jpg",))
    query = Query(image=jpeg(newcomer.seed, newcomer.size))  # search by the image about to be indexed
    cache = QueryCache(REDIS_URL, store=str(library.qdrant_path), prefix=prefix)
    with parts(library, cache) as (client, _, cached):
        before_index = search(client, cached, query, limit=10, cache=cache)
        before = lookups()
        assert search(client, cached, query, limit=10, cache=cache) == before_index
        assert counted_since(before)[("results", "hit")] == 1
    assert len(before_index) == 3

    (added,) = index_pictures(library, [newcomer], tmp_path / "two.log")

    with parts(library, cache) as (client, _, cached):
        before = lookups()
        after_index = search(client, cached, query, limit=10, cache=cache)
        assert counted_since(before) == {("vector", "hit"): 1, ("results", "miss"): 1}
    assert len(after_index) == 4
    assert after_index[0].sha256 == added.sha256


def test_redis_down_still_answers_uncached_and_says_so_once(
    library: Library, prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_cache, "RETRY_AFTER_S", 0.0)  # every lookup tries Redis (and fails) again
    cache = QueryCache(f"redis://127.0.0.1:{free_port()}/0", store=str(library.qdrant_path), prefix=prefix)
    caplog.set_level(logging.INFO, logger=LOGGER)
    with parts(library, cache) as (client, counting, cached):
        expected = search(client, counting.inner, Query(text=QUERY), limit=5)
        before = lookups()
        answers = [search(client, cached, Query(text=QUERY), limit=5, cache=cache) for _ in range(3)]
    assert all(same_results(answer, expected) for answer in answers)
    assert counting.texts == [QUERY] * 3  # nothing cached: the service answered every time
    assert counted_since(before) == {("vector", "unavailable"): 3, ("results", "unavailable"): 3}
    warnings = [r for r in caplog.records if r.name == LOGGER]
    assert len(warnings) == 1
    assert warnings[0].levelno == logging.WARNING
    assert "Redis is not answering" in warnings[0].getMessage()


@contextlib.contextmanager
def redis_server(port: int) -> Iterator[None]:
    """A redis-server of this test's own (no persistence), stopped afterwards."""
    process = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with redis.Redis(port=port) as client:
                    client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=20)


def test_the_cache_comes_back_with_redis_and_logs_each_change_once(
    library: Library, prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(query_cache, "RETRY_AFTER_S", 0.2)
    port = free_port()
    cache = QueryCache(f"redis://127.0.0.1:{port}/0", store=str(library.qdrant_path), prefix=prefix)
    caplog.set_level(logging.INFO, logger=LOGGER)

    def messages() -> list[tuple[int, str]]:
        return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == LOGGER]

    with parts(library, cache) as (client, _, cached):
        run = lambda: search(client, cached, Query(text=QUERY), limit=5, cache=cache)  # noqa: E731
        down = run()
        with redis_server(port):
            time.sleep(0.3)
            assert same_results(run(), down)  # Redis tried again: a miss, stored
            before = lookups()
            assert same_results(run(), down)
            assert counted_since(before) == {("vector", "hit"): 1, ("results", "hit"): 1}
        time.sleep(0.3)
        assert same_results(run(), down)
        assert same_results(run(), down)
    levels = [level for level, _ in messages()]
    assert levels == [logging.WARNING, logging.INFO, logging.WARNING]
    assert "answers again" in messages()[1][1]


def test_a_redis_that_never_answers_times_out_and_the_search_answers(library: Library, prefix: str) -> None:
    """A listening socket that accepts connections and never replies: the short socket timeout."""
    silent = socket.create_server(("127.0.0.1", 0))
    try:
        port = silent.getsockname()[1]
        cache = QueryCache(f"redis://127.0.0.1:{port}/0", store=str(library.qdrant_path), prefix=prefix, timeout_s=0.2)
        with parts(library, cache) as (client, counting, cached):
            expected = search(client, counting.inner, Query(text=QUERY), limit=5)
            before = lookups()
            assert same_results(search(client, cached, Query(text=QUERY), limit=5, cache=cache), expected)
            assert counted_since(before) == {("vector", "unavailable"): 1, ("results", "unavailable"): 1}
    finally:
        silent.close()


def test_the_app_uses_the_cache_given_by_redis_url(
    library_environment: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The UI itself: with REDIS_URL set, a query asked again is answered from Redis."""
    require_redis()
    monkeypatch.setenv("REDIS_URL", REDIS_URL)
    text = f"{QUERY} {uuid.uuid4().hex[:8]}"  # new to Redis
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.text_input(key="query").input(text).run()
        first = [hit.sha256 for hit in at.session_state["hits"]]
        at.text_input(key="query").input("").run()
        st.cache_resource.clear()  # the process's own vector cache: only Redis can answer now
        before = lookups()
        at.text_input(key="query").input(text).run()
        second = [hit.sha256 for hit in at.session_state["hits"]]
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
    assert not at.exception, at.exception
    assert counted_since(before) == {("vector", "hit"): 1, ("results", "hit"): 1}
    assert second == first
    assert len(first) == 12
