"""The store seam against qdrant-client's embedded mode (the real client and its local engine).

Collections, the alias the index is searched by, the collection a reindex builds, the atomic swap,
the legacy collection named like the alias, write targets, date filters and date order, word matching.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from dyimages_common import index_builds
from dyimages_common.image_index import ImageIndex
from dyimages_common.index_query import PointFilter
from dyimages_common.point_writes import ImageVector
from dyimages_common.qdrant import create_collection
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store_errors import CollectionMismatchError, StoreInUse
from testkit.images import jpeg
from testkit.messages import message_for

pytestmark = pytest.mark.unit

DIM = 4
OLD = {"dim": DIM, "model": "m1", "pretrained": "none"}
NEW = {"dim": DIM, "model": "m2", "pretrained": "none"}


@pytest.fixture
def index(qdrant_path: Path) -> Iterator[ImageIndex]:
    opened = ImageIndex.connect(load_settings(QdrantSettings, qdrant_path=qdrant_path, qdrant_collection="images"))
    yield opened
    opened.close()


def _image(seed: int, url: str, vector: list[float], **exif: object) -> ImageVector:
    event = message_for(jpeg(seed), url).model_copy(update=exif)
    return ImageVector(event.sha256, np.asarray(vector, dtype=np.float32), [event])


def _write(index: ImageIndex, images: list[ImageVector], identity: dict) -> None:
    for target in index_builds.write_targets(index, **identity):
        index.write(target, images, model=identity["model"])


def test_the_first_collection_is_made_behind_the_alias_and_records_its_model(index: ImageIndex) -> None:
    assert index_builds.ensure_serving(index, **OLD) is True
    assert index_builds.ensure_serving(index, **OLD) is False
    serving = index.serving()
    assert serving is not None
    assert serving.startswith("images_")
    assert index.aliases() == {"images": serving}
    found = index.collection_model()
    assert (found.model, found.dim, found.weights) == ("m1", DIM, "none")


@pytest.mark.parametrize("other", [{**OLD, "dim": 8}, {**OLD, "model": "m2"}, {**OLD, "pretrained": "laion2b"}])
def test_vectors_of_another_model_size_or_weights_have_no_target(index: ImageIndex, other: dict) -> None:
    index_builds.ensure_serving(index, **OLD)
    with pytest.raises(CollectionMismatchError, match="dyimages reindex"):
        index_builds.write_targets(index, **other)


def test_a_reindex_builds_beside_the_serving_collection_and_swaps_atomically(index: ImageIndex) -> None:
    old_image = _image(1, "https://a.example/old.jpg", [1, 0, 0, 0])
    _write(index, [old_image], OLD)
    old = index.serving()

    building, resumed = index_builds.begin_build(index, **NEW)
    assert (resumed, index.serving()) == (False, old)
    assert index_builds.begin_build(index, **NEW) == (building, True)  # a second run resumes
    assert index_builds.write_targets(index, **NEW) == [building]  # the old model's collection is not a target
    assert index_builds.write_targets(index, **OLD) == [old]
    new_image = _image(1, "https://a.example/old.jpg", [0, 1, 0, 0])
    _write(index, [new_image], NEW)
    # searches still read the old collection while the new one fills
    assert [f.point.sha256 for f in index.search(np.array([1, 0, 0, 0], np.float32))] == [old_image.sha256]
    assert index.search(np.array([1, 0, 0, 0], np.float32))[0].score == pytest.approx(1.0)
    assert index_builds.missing_from_build(index, {old_image.sha256}) == []

    assert index_builds.swap(index) == (building, old)
    assert index.serving() == building
    assert index.aliases() == {"images": building}
    assert index.collection_model().model == "m2"
    assert index.search(np.array([0, 1, 0, 0], np.float32))[0].score == pytest.approx(1.0)
    assert index.collection_model(old) is None  # the old collection is deleted after the swap


def test_the_same_model_writes_to_both_while_a_reindex_builds(index: ImageIndex) -> None:
    _write(index, [_image(2, "https://a.example/2.jpg", [1, 0, 0, 0])], OLD)
    building, _ = index_builds.begin_build(index, **OLD)
    assert index_builds.write_targets(index, **OLD) == [index.serving(), building]
    late = _image(3, "https://a.example/3.jpg", [0, 0, 1, 0])  # downloaded during the reindex
    _write(index, [late], OLD)
    assert index.count() == 2
    assert index.count(building) == 1


def test_a_collection_named_like_the_alias_is_served_then_replaced_by_the_first_swap(index: ImageIndex) -> None:
    """Before aliases the collection was called QDRANT_COLLECTION itself; Qdrant refuses an alias of that name."""
    create_collection(index._client, "images", **OLD)
    _write(index, [_image(4, "https://a.example/4.jpg", [1, 0, 0, 0])], OLD)
    assert index.serving() == "images"
    building, _ = index_builds.begin_build(index, **NEW)
    assert index.serving() == "images"
    new, old = index_builds.swap(index)
    assert (new, old) == (building, None)
    assert index.aliases() == {"images": building}


def test_swap_without_a_build_is_refused(index: ImageIndex) -> None:
    index_builds.ensure_serving(index, **OLD)
    with pytest.raises(RuntimeError, match="dyimages reindex"):
        index_builds.swap(index)


def test_drop_deletes_the_serving_and_the_building_collection(index: ImageIndex) -> None:
    index_builds.ensure_serving(index, **OLD)
    index_builds.begin_build(index, **NEW)
    assert len(index_builds.drop(index)) == 2
    assert index.serving() is None
    assert index.aliases() == {}


def test_dates_filter_inclusively_and_order_browsing_and_results(index: ImageIndex) -> None:
    shot = {"taken_at": datetime(2020, 5, 1, 23, 30, tzinfo=UTC), "camera": "Canon EOS 5D"}
    images = [
        _image(5, "https://a.example/photos/IMG_2041.jpg", [1, 0, 0, 0], **shot),
        _image(6, "https://a.example/b.jpg", [0.9, 0.1, 0, 0]),  # no EXIF date: its download time
    ]
    _write(index, images, OLD)
    taken, downloaded = images[0].sha256, images[1].sha256
    may_first = PointFilter(date_from=date(2020, 5, 1), date_to=date(2020, 5, 1))
    probe = np.array([1, 0, 0, 0], np.float32)
    assert [f.point.sha256 for f in index.search(probe, may_first)] == [taken]
    assert [f.point.sha256 for f in index.search(probe, PointFilter(date_to=date(2020, 4, 30)))] == []
    assert [f.point.sha256 for f in index.search(probe, PointFilter(date_from=date(2020, 5, 2)))] == [downloaded]
    assert [f.point.sha256 for f in index.search(probe, order="oldest")] == [taken, downloaded]
    assert [f.point.sha256 for f in index.search(probe, order="newest")] == [downloaded, taken]
    assert [f.point.sha256 for f in index.browse(order="newest")] == [downloaded, taken]
    assert [f.point.sha256 for f in index.browse(order="oldest", offset=1)] == [downloaded]
    point = index.point(taken)
    assert (point.date, point.camera) == (shot["taken_at"], "Canon EOS 5D")


def test_word_matching_reaches_the_camera_and_the_file_name(index: ImageIndex) -> None:
    images = [
        _image(7, "https://a.example/x/IMG_2041.jpg", [0, 0, 0, 1], camera="Canon EOS 5D"),
        _image(8, "https://a.example/y/best.jpg", [1, 0, 0, 0]),
    ]
    _write(index, images, OLD)
    probe = np.array([1, 0, 0, 0], np.float32)
    assert index.search(probe, limit=1)[0].point.sha256 == images[1].sha256
    for word in ("canon", "IMG_2041"):
        assert index.search(probe, limit=1, words=[word])[0].point.sha256 == images[0].sha256


def test_a_folder_held_by_another_process_is_classified_once(qdrant_path: Path, index: ImageIndex) -> None:
    index_builds.ensure_serving(index, **OLD)
    with pytest.raises(StoreInUse, match="in use by another process"):
        ImageIndex.connect(load_settings(QdrantSettings, qdrant_path=qdrant_path))


def test_a_collection_of_an_older_release_is_given_the_payload_indexes_it_lacks() -> None:
    """Embedded mode keeps no payload schema (its indexes are no-ops), so every index counts as missing here:
    what is checked is that opening an existing collection asks for each index the point model marks."""
    from qdrant_client import QdrantClient, models

    from dyimages_common.qdrant import PAYLOAD_INDEXES

    class Recording(QdrantClient):
        def __init__(self) -> None:
            super().__init__(":memory:")
            self.indexed: list[str] = []

        def create_payload_index(self, collection_name: str, field_name: str, *args: object, **kwargs: object):
            self.indexed.append(field_name)
            return super().create_payload_index(collection_name, field_name, *args, **kwargs)

    client = Recording()
    client.create_collection(  # as an older release made it: no index on date or words
        "images", vectors_config=models.VectorParams(size=DIM, distance=models.Distance.COSINE), metadata=OLD
    )
    assert index_builds.ensure_serving(ImageIndex(client, "images"), **OLD) is False
    assert sorted(client.indexed) == sorted(PAYLOAD_INDEXES)
    client.close()
