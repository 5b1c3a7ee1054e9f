"""Cached query vectors never cross models: two real embedding services behind one URL (a TCP forwarder).

The session's service runs ``dy-tiny`` with random weights (``none``); a second one runs the same model
config with other weights (a checkpoint of another seed): same name, same size, other vectors, told
apart only by the ``pretrained`` each answer names, as replicas with different weights behind one load
balancer, or a service restarted with other weights, look to the app. Both vector caches are checked:
Redis (:class:`QueryCache`, real server on 127.0.0.1:6379) and the UI's per-process one.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
import redis

from dyimages_common.embeddings.client import EmbeddingClient, ModelIdentity
from dyimages_common.store import builds as index_builds
from dyimages_common.store.protocol import ImageStore
from search_app.search.cache import QueryCache
from search_app.search.cache_vectors import CachingEmbedder, ModelsMixed, ProcessVectors, ServiceIdentity, VectorShelf
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import IndexMismatch, ServiceEmbedder
from testkit.embedding import EmbeddingService, other_weights_service
from testkit.index_points import add_point, fake_sha, open_index
from testkit.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"
TEXT = "a red bicycle leaning on a wall"
POINT_TEXTS = [TEXT, "a bowl of soup", "a snowy mountain", "a cat asleep on a sofa"]


@pytest.fixture(scope="module")
def other_weights(shared_images_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingService]:
    """A second real service: the same model name and vector size, other weights."""
    with other_weights_service(shared_images_dir, tmp_path_factory.mktemp("other-weights")) as service:
        yield service


def _port(url: str) -> int:
    port = urlsplit(url).port
    assert port is not None
    return port


class Balancer:
    """One URL in front of either service; :meth:`send_to` moves every later connection."""

    def __init__(self, first: EmbeddingService) -> None:
        self.proxy = TcpProxy("127.0.0.1", _port(first.url)).open()
        self.url = f"http://127.0.0.1:{self.proxy.port}"

    def send_to(self, service: EmbeddingService) -> None:
        self.proxy.drop()
        self.proxy.target = ("127.0.0.1", _port(service.url))
        self.proxy.open()


@pytest.fixture
def balancer(embedding_service: EmbeddingService) -> Iterator[Balancer]:
    balancer = Balancer(embedding_service)
    yield balancer
    balancer.proxy.close()


@pytest.fixture(params=["redis", "process"])
def shelf(request: pytest.FixtureRequest) -> Iterator[VectorShelf]:
    """Each vector cache in turn: Redis (this test's own prefix, deleted after) and the process's."""
    if request.param == "process":
        yield ProcessVectors(100)
        return
    prefix = f"test:{uuid.uuid4().hex[:12]}:"
    cache = QueryCache(REDIS_URL, prefix=prefix)
    yield cache
    cache.close()
    with redis.Redis.from_url(REDIS_URL) as server:
        for key in server.scan_iter(f"{prefix}*"):
            server.delete(key)


def identity_of(service: EmbeddingService) -> ModelIdentity:
    with EmbeddingClient(service.url) as client:
        return client.info().identity


def text_vector(service: EmbeddingService, text: str) -> np.ndarray:
    with EmbeddingClient(service.url) as client:
        return client.embed_texts([text])[0]


def test_a_vector_is_kept_under_the_model_that_made_it_not_the_one_expected(
    embedding_service: EmbeddingService, other_weights: EmbeddingService, balancer: Balancer, shelf: VectorShelf
) -> None:
    first, second = identity_of(embedding_service), identity_of(other_weights)
    with EmbeddingClient(balancer.url) as client:
        expected = ServiceIdentity(client)  # asked now, trusted for 30 s
        assert expected() == first
        balancer.send_to(other_weights)  # the service changes its weights meanwhile
        embedder = CachingEmbedder(shelf, ServiceEmbedder(client), expected)
        vector = embedder.text(TEXT)
        assert embedder.answered_by() == second
        assert expected() == second  # the answer corrected the expectation at once
    np.testing.assert_allclose(vector, text_vector(other_weights, TEXT), atol=1e-5)
    assert shelf.find_vector(first, "text", TEXT) is None  # never filed under the model expected
    found = shelf.find_vector(second, "text", TEXT)
    assert found is not None
    np.testing.assert_allclose(found, vector, atol=1e-6)


def test_a_query_never_combines_vectors_of_two_models(
    embedding_service: EmbeddingService, other_weights: EmbeddingService, balancer: Balancer, shelf: VectorShelf
) -> None:
    with EmbeddingClient(balancer.url) as client:
        expected = ServiceIdentity(client)
        CachingEmbedder(shelf, ServiceEmbedder(client), expected).text("beach")  # kept under the first model
        balancer.send_to(other_weights)
        embedder = CachingEmbedder(shelf, ServiceEmbedder(client), expected)
        embedder.text("beach")  # from the cache: the first model's
        with pytest.raises(ModelsMixed, match="search again"):
            embedder.text("people")  # made by the other weights


def _index_of(service: EmbeddingService, path: Path) -> ImageStore:
    """An index whose collection records ``service``'s model and weights, holding its vectors of a few texts."""
    index = open_index(path)
    with EmbeddingClient(service.url) as client:
        info = client.info()
        index_builds.write_targets(index, dim=info.dim, model=info.model, pretrained=info.pretrained)
        for n, vector in enumerate(client.embed_texts(POINT_TEXTS), start=1):
            add_point(index, fake_sha(n), vector, f"https://models.example/{n}.jpg", model=info.model)
    return index


def test_after_a_model_change_the_search_never_uses_a_vector_of_the_other_weights(
    embedding_service: EmbeddingService,
    other_weights: EmbeddingService,
    balancer: Balancer,
    shelf: VectorShelf,
    tmp_path: Path,
) -> None:
    index = _index_of(embedding_service, tmp_path / "qdrant")
    cache = shelf if isinstance(shelf, QueryCache) else None
    try:
        with EmbeddingClient(balancer.url) as client:
            stale = ServiceIdentity(client)
            stale()  # the first model, trusted for 30 s
            balancer.send_to(other_weights)
            with pytest.raises(IndexMismatch):  # the other weights' vector is refused by the index...
                search(index, CachingEmbedder(shelf, ServiceEmbedder(client), stale), Query(text=TEXT), cache=cache)
            balancer.send_to(embedding_service)  # ...and the service is back to the index's weights
        with EmbeddingClient(balancer.url) as client:  # a new app process: nothing answered yet
            embedder: Callable[[], CachingEmbedder] = lambda: CachingEmbedder(  # noqa: E731
                shelf, ServiceEmbedder(client), ServiceIdentity(client)
            )
            hits = search(index, embedder(), Query(text=TEXT), limit=4, cache=cache)
        with EmbeddingClient(embedding_service.url) as direct:
            uncached = search(index, ServiceEmbedder(direct), Query(text=TEXT), limit=4)
    finally:
        index.close()
    assert hits[0].sha256 == fake_sha(1)  # the text's own vector: found by the right model's vector
    assert [(h.sha256, round(h.score, 4)) for h in hits] == [(h.sha256, round(h.score, 4)) for h in uncached]
