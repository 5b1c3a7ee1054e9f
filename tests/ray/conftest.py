"""One real Ray cluster for the tests in this folder: a head and a worker node, separate process trees.

The head (``python -m embedding.ray_serve head``) and the worker (``ray start --address ...``) each
get one CPU; every test deploys the embedding service as an application of its own (a quarter CPU
per replica) and removes it afterwards, so the cluster is started once for the whole folder. The
semantic library of ``tests/semantic`` is indexed here through the service on Ray: its fixture is
imported, with ``demo_embedding`` replaced by the Ray deployment of the demo model.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from testkit.demo_library import demo_model_env
from testkit.embedding import EmbeddingService
from testkit.ray_cluster import RayCluster, ray_cluster
from tests.semantic.conftest import demo_library  # noqa: F401 - the same library, indexed through Ray


@pytest.fixture(scope="session")
def ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    with ray_cluster(tmp_path_factory.mktemp("ray-images"), tmp_path_factory.mktemp("ray-logs")) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def demo_embedding(ray: RayCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingService]:
    """The demo model served by Ray (the semantic fixture's ``demo_embedding``, on the other backend)."""
    with ray.service("demo", tmp_path_factory.mktemp("demo-images"), **demo_model_env()) as service:
        yield service


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The first test here waits for the cluster to start: minutes on a busy 2-core machine."""
    for item in items:
        if "tests/ray/" in str(item.path):
            item.add_marker(pytest.mark.timeout(900))
