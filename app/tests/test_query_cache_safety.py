"""The query cache never serves a wrong page and never crashes a search: real Redis, a real embedded store.

Pages here come from :meth:`QueryCache.results` over points written through the store seam with vectors
the test chooses (no embedding service needed: the page cache keys by the query vector). Each test uses
its own key prefix on the shared Redis (127.0.0.1:6379) and deletes its keys afterwards; a missing Redis
fails, never skips.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from prometheus_client import REGISTRY
from pydantic import TypeAdapter

from dyimages_common.embeddings.client import ModelIdentity
from dyimages_common.store.protocol import ImageStore
from search_app.search.cache import QueryCache, forget_pages
from search_app.search.cache_entries import entry_format, versioned_prefix
from search_app.search.engine import search_vector
from search_app.search.model import Filters, Hit
from testkit.index_points import add_point, fake_sha, open_index

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
DIM = 8
MODEL = ModelIdentity("dy-tiny", "none")


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def prefix() -> Iterator[str]:
    name = f"test:{uuid.uuid4().hex[:12]}:"
    with redis.Redis.from_url(REDIS_URL) as server:
        server.ping()  # no Redis: the test fails here
        yield name
        for key in server.scan_iter(f"{name}*"):
            server.delete(key)


@pytest.fixture
def index(tmp_path: Path) -> Iterator[ImageStore]:
    store = open_index(tmp_path / "qdrant")
    for n in range(1, 6):
        add_point(store, fake_sha(n), unit(n), f"https://cache.example/{n}.jpg")
    yield store
    store.close()


def unreadable_count(kind: str) -> float:
    labels = {"kind": kind, "outcome": "unreadable"}
    return REGISTRY.get_sample_value("dyimages_app_query_cache_total", labels) or 0.0


def page_of(
    cache: QueryCache,
    index: ImageStore,
    vector: np.ndarray,
    compute: Callable[[], list[Hit]] | None = None,
    **keys: object,
) -> list[Hit]:
    """The page through the cache; computed as a plain search unless ``compute`` says otherwise."""
    return cache.results(
        index,
        vector,
        filters=Filters(),
        limit=3,
        offset=0,
        exclude_ids=[],
        compute=compute or (lambda: search_vector(index, vector, limit=3)),
        **keys,  # type: ignore[arg-type]
    )


def stored_keys(prefix: str, kind: str) -> list[bytes]:
    with redis.Redis.from_url(REDIS_URL) as server:
        return list(server.scan_iter(f"{prefix}*:{kind}:*"))


def test_an_unreadable_page_is_a_miss_deleted_and_stored_again(index: ImageStore, prefix: str) -> None:
    cache = QueryCache(REDIS_URL, store="unreadable", prefix=prefix)
    expected = page_of(cache, index, unit(1))
    (key,) = stored_keys(prefix, "res")
    with redis.Redis.from_url(REDIS_URL) as server:
        for garbage in (b'["{\\"sha256\\": \\"an older format\\"}"]', b"\x00not json", b'[{"rank": "first"}]'):
            server.set(key, garbage)
            before = unreadable_count("results")
            assert page_of(cache, index, unit(1)) == expected  # computed again, no exception
            assert unreadable_count("results") == before + 1
            assert server.get(key) != garbage  # the bad entry went; the fresh page replaced it
            assert page_of(cache, index, unit(1)) == expected
    cache.close()


def test_an_unreadable_vector_or_one_of_another_model_is_a_miss_and_deleted(prefix: str) -> None:
    cache = QueryCache(REDIS_URL, prefix=prefix)
    cache.keep_vector(MODEL, "text", "a red bicycle", unit(7))
    np.testing.assert_array_equal(cache.find_vector(MODEL, "text", "a red bicycle"), unit(7))
    (key,) = stored_keys(prefix, "vec")
    other = ModelIdentity("dy-tiny", "/models/other-weights.pt")
    wrong_model = QueryCache(REDIS_URL, prefix=prefix)
    wrong_model.keep_vector(other, "text", "x", unit(8))
    (other_key,) = set(stored_keys(prefix, "vec")) - {key}
    with redis.Redis.from_url(REDIS_URL) as server:
        for garbage in (unit(7).tobytes(), b'{"model": "dy-tiny"}', server.get(other_key)):
            server.set(key, garbage)  # raw bytes (the old format), a partial entry, another model's entry
            before = unreadable_count("vector")
            assert cache.find_vector(MODEL, "text", "a red bicycle") is None
            assert unreadable_count("vector") == before + 1
            assert server.get(key) is None
    cache.close()
    wrong_model.close()


def test_the_key_prefix_changes_with_the_stored_page_format() -> None:
    class LaterHit(Hit):
        album: str | None = None  # a field a later release might add

    assert entry_format(TypeAdapter(list[LaterHit])) != entry_format()
    assert versioned_prefix("p:") == f"p:{entry_format()}:"


def test_the_query_words_are_part_of_the_results_key(index: ImageStore, prefix: str) -> None:
    """Two queries with one vector (a case-insensitive tokenizer) and words of other case: two pages."""
    cache = QueryCache(REDIS_URL, store="words", prefix=prefix)
    vector = unit(2)
    upper = page_of(cache, index, vector, lambda: [], words=["Beach"])
    lower = page_of(cache, index, vector, words=["beach"])
    assert upper == []
    assert lower
    assert lower[0].sha256 == fake_sha(2)
    assert len(stored_keys(prefix, "res")) == 2
    cache.close()


def test_the_model_of_the_query_vector_is_part_of_the_results_key(index: ImageStore, prefix: str) -> None:
    cache = QueryCache(REDIS_URL, store="models", prefix=prefix)
    page_of(cache, index, unit(3), made_by=MODEL)
    page_of(cache, index, unit(3), made_by=ModelIdentity("dy-tiny", "/models/other-weights.pt"))
    assert len(stored_keys(prefix, "res")) == 2
    cache.close()


def test_a_page_computed_while_prune_removes_an_image_is_never_served(index: ImageStore, prefix: str) -> None:
    """The race: a search computes its page, prune removes an image of it and raises the generation, the
    search then stores its (stale) page; an image indexed afterwards brings the count back to the same
    number. The page must still never be read again."""
    cache = QueryCache(REDIS_URL, store="race", prefix=prefix)
    vector = unit(4)
    removed = fake_sha(4)

    def search_while_pruning() -> list[Hit]:
        page = search_vector(index, vector, limit=3)
        index.delete([hit.id for hit in page if hit.sha256 == removed])  # prune, meanwhile
        assert forget_pages(REDIS_URL, prefix=prefix)
        return page

    stale = page_of(cache, index, vector, search_while_pruning)
    assert stale[0].sha256 == removed
    add_point(index, fake_sha(99), unit(99), "https://cache.example/99.jpg")  # the count is 5 again
    assert index.count() == 5
    fresh = page_of(cache, index, vector)
    assert removed not in [hit.sha256 for hit in fresh]
    cache.close()


def test_forget_pages_without_redis_says_so_and_raises_nothing(prefix: str) -> None:
    assert forget_pages("", prefix=prefix) is False
    assert forget_pages("redis://127.0.0.1:1/0", prefix=prefix) is False
