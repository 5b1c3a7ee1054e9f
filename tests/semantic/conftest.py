"""The semantic tests' library, indexed through the real services with the trained demo model.

The embedding service (``python -m embedding``, its CPU default runtime) loads the demo model through
its normal settings; the real indexer embeds every picture (:mod:`testkit.semantic_library`) from a
queue of the session's own on the real RabbitMQ into an embedded Qdrant folder.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from testkit.demo_library import demo_model_env, index_stored, new_library
from testkit.embedding import EmbeddingService, run_embedding_service
from testkit.rabbit import delete_topology, require_rabbitmq, unique_queue_name
from testkit.semantic_library import DemoLibrary, store_library


@pytest.fixture(scope="session")
def demo_embedding(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddingService]:
    """A real embedding service with the demo model, loaded through MODEL_NAME/MODEL_CONFIG/MODEL_PRETRAINED."""
    images_dir = tmp_path_factory.mktemp("demo-images")
    with run_embedding_service(images_dir, tmp_path_factory.mktemp("demo-logs"), **demo_model_env()) as service:
        yield service


@pytest.fixture(scope="session")
def demo_library(tmp_path_factory: pytest.TempPathFactory, demo_embedding: EmbeddingService) -> Iterator[DemoLibrary]:
    require_rabbitmq()
    queue = unique_queue_name("semantic")
    tmp = tmp_path_factory.mktemp("demo-library")
    library = new_library(tmp, Path(demo_embedding.env["IMAGES_DIR"]), queue, demo_embedding.url)
    demo = DemoLibrary(library, demo_embedding.url)
    try:
        index_stored(library, store_library(demo), tmp / "indexer.log")
        yield demo
    finally:
        delete_topology(queue)
