from pathlib import Path

import pytest
from qdrant_client import models

from dyimages_common.qdrant import CollectionMismatchError, collection_model, connect_qdrant, ensure_collection
from dyimages_common.settings import QdrantSettings, load_settings

pytestmark = pytest.mark.unit


def test_collection_is_created_once_and_records_its_model(qdrant_path: Path) -> None:
    client = connect_qdrant(load_settings(QdrantSettings, qdrant_path=qdrant_path))
    try:
        assert ensure_collection(client, "images", dim=8, model="m1") is True
        assert ensure_collection(client, "images", dim=8, model="m1") is False
        assert collection_model(client, "images") == ("m1", 8)
        params = client.get_collection("images").config.params.vectors
        assert isinstance(params, models.VectorParams)
        assert params.distance == models.Distance.COSINE
    finally:
        client.close()


@pytest.mark.parametrize(("dim", "model"), [(16, "m1"), (8, "m2")])
def test_another_model_or_size_is_refused_with_a_reindex_hint(qdrant_path: Path, dim: int, model: str) -> None:
    client = connect_qdrant(load_settings(QdrantSettings, qdrant_path=qdrant_path))
    try:
        ensure_collection(client, "images", dim=8, model="m1")
        with pytest.raises(CollectionMismatchError, match="dyimages reindex"):
            ensure_collection(client, "images", dim=dim, model=model)
    finally:
        client.close()


def test_the_same_model_with_other_weights_is_refused(qdrant_path: Path) -> None:
    client = connect_qdrant(load_settings(QdrantSettings, qdrant_path=qdrant_path))
    try:
        assert ensure_collection(client, "images", dim=8, model="m1", pretrained="none") is True
        assert ensure_collection(client, "images", dim=8, model="m1", pretrained="none") is False
        assert ensure_collection(client, "images", dim=8, model="m1") is False  # callers that do not check weights
        with pytest.raises(CollectionMismatchError, match="weights 'laion2b'"):
            ensure_collection(client, "images", dim=8, model="m1", pretrained="laion2b")
    finally:
        client.close()
