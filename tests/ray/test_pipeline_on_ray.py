"""The end-to-end tests of ``tests/e2e``, unchanged, with the embedding service on Ray Serve.

The test functions are the same objects as there. Each starts its embedding service with
``run_embedding_service(images_dir, log_dir, ...)``; here that name, in the test's own module, starts
the service as an application on the Ray cluster instead (a head and a worker node), so the real
downloader, indexer and RabbitMQ talk to Serve's proxy through nothing but EMBEDDING_SERVICE_URL.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.embedding import EmbeddingService
from testkit.ray_cluster import RayCluster
from tests.e2e.test_pipeline import test_urls_become_searchable_images_with_every_url_and_their_own_vector

ON_RAY = (test_urls_become_searchable_images_with_every_url_and_their_own_vector,)
_apps = itertools.count(1)


@pytest.fixture(autouse=True)
def embedding_on_ray(ray: RayCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    @contextlib.contextmanager
    def run_on_ray(images_dir: Path, log_dir: Path, **extra: str) -> Iterator[EmbeddingService]:
        with ray.service(f"e2e-{next(_apps)}", images_dir, **extra) as service:
            yield service

    for test in ON_RAY:
        monkeypatch.setitem(test.__globals__, "run_embedding_service", run_on_ray)


__all__ = [test.__name__ for test in ON_RAY]
