"""The store contract: the same behaviour through the seam on every engine (:data:`testkit.stores.ENGINES`).

Each case runs on Qdrant Edge (the embedded engine), on qdrant-client's embedded mode, and on the server
adapter over HTTP (qdrant-client's REST calls, answered by the stand-in of ``testkit.qdrant_rest``, which
records every exchange). A difference between engines fails here: collections and the name the index is
searched by, the collection a reindex builds, the atomic swap, the legacy collection named like the index,
write targets, conditional writes, point changes and deletes by revision, date filters and date order,
word matching, filters, paging, facets, vectors, and a missing or mismatched collection.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest

from dyimages_common.store import builds as index_builds
from dyimages_common.store.errors import CollectionMismatchError, CollectionMissing
from dyimages_common.store.points import ImagePoint
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import ImageVector, PointFilter
from testkit.images import jpeg
from testkit.messages import message_for
from testkit.stores import ENGINES, opened_store
from testkit.stores import memory_folder as in_memory

pytestmark = pytest.mark.unit

DIM = 4
OLD = {"dim": DIM, "model": "m1", "pretrained": "none"}
NEW = {"dim": DIM, "model": "m2", "pretrained": "none"}


@pytest.fixture
def memory_folder() -> Iterator[Path]:
    with in_memory() as folder:
        yield folder


@pytest.fixture(params=ENGINES)
def index(request: pytest.FixtureRequest, memory_folder: Path) -> Iterator[ImageStore]:
    with opened_store(request.param, memory_folder / "store") as opened:
        yield opened


def _image(seed: int, url: str, vector: list[float], **exif: object) -> ImageVector:
    event = message_for(jpeg(seed), url).model_copy(update=exif)
    return ImageVector(event.sha256, np.asarray(vector, dtype=np.float32), [event])


def _write(index: ImageStore, images: list[ImageVector], identity: dict) -> None:
    for target in index_builds.write_targets(index, **identity):
        index.write(target, images, model=identity["model"])


def _shas(found: list) -> list[str]:
    return [f.point.sha256 for f in found]


def test_the_first_collection_is_made_behind_the_name_and_records_its_model(index: ImageStore) -> None:
    assert index_builds.ensure_serving(index, **OLD) is True
    assert index_builds.ensure_serving(index, **OLD) is False
    serving = index.serving()
    assert serving is not None
    assert serving.startswith("images_")
    assert index.names() == {"images": serving}
    found = index.collection_model()
    assert (found.model, found.dim, found.weights) == ("m1", DIM, "none")


@pytest.mark.parametrize("other", [{**OLD, "dim": 8}, {**OLD, "model": "m2"}, {**OLD, "pretrained": "laion2b"}])
def test_vectors_of_another_model_size_or_weights_have_no_target(index: ImageStore, other: dict) -> None:
    index_builds.ensure_serving(index, **OLD)
    with pytest.raises(CollectionMismatchError, match="dyimages reindex"):
        index_builds.write_targets(index, **other)


def test_a_reindex_builds_beside_the_serving_collection_and_swaps_atomically(index: ImageStore) -> None:
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
    assert _shas(index.search(np.array([1, 0, 0, 0], np.float32))) == [old_image.sha256]
    assert index.search(np.array([1, 0, 0, 0], np.float32))[0].score == pytest.approx(1.0)
    assert index_builds.missing_from_build(index, {old_image.sha256}) == []

    assert index_builds.swap(index) == (building, old)
    assert index.serving() == building
    assert index.names() == {"images": building}
    assert index.collection_model().model == "m2"
    assert index.search(np.array([0, 1, 0, 0], np.float32))[0].score == pytest.approx(1.0)
    assert index.collection_model(old) is None  # the old collection is deleted after the swap


def test_the_same_model_writes_to_both_while_a_reindex_builds(index: ImageStore) -> None:
    _write(index, [_image(2, "https://a.example/2.jpg", [1, 0, 0, 0])], OLD)
    building, _ = index_builds.begin_build(index, **OLD)
    assert index_builds.write_targets(index, **OLD) == [index.serving(), building]
    late = _image(3, "https://a.example/3.jpg", [0, 0, 1, 0])  # downloaded during the reindex
    _write(index, [late], OLD)
    assert index.count() == 2
    assert index.count(building) == 1


def test_a_collection_named_like_the_index_is_served_then_replaced_by_the_first_swap(index: ImageStore) -> None:
    """Before names were used the collection was called QDRANT_COLLECTION itself (Qdrant refuses an alias
    of that name): it serves as it is until the first swap replaces it."""
    index.create_collection("images", **OLD)
    _write(index, [_image(4, "https://a.example/4.jpg", [1, 0, 0, 0])], OLD)
    assert index.serving() == "images"
    building, _ = index_builds.begin_build(index, **NEW)
    assert index.serving() == "images"
    new, old = index_builds.swap(index)
    assert (new, old) == (building, None)
    assert index.names() == {"images": building}


def test_swap_without_a_build_is_refused(index: ImageStore) -> None:
    index_builds.ensure_serving(index, **OLD)
    with pytest.raises(RuntimeError, match="dyimages reindex"):
        index_builds.swap(index)


def test_drop_deletes_the_serving_and_the_building_collection(index: ImageStore) -> None:
    index_builds.ensure_serving(index, **OLD)
    index_builds.begin_build(index, **NEW)
    assert len(index_builds.drop(index)) == 2
    assert index.serving() is None
    assert index.names() == {}
    assert index.count() is None


def test_dates_filter_inclusively_and_order_browsing_and_results(index: ImageStore) -> None:
    shot = {"taken_at": datetime(2020, 5, 1, 23, 30, tzinfo=UTC), "camera": "Canon EOS 5D"}
    images = [
        _image(5, "https://a.example/photos/IMG_2041.jpg", [1, 0, 0, 0], **shot),
        _image(6, "https://a.example/b.jpg", [0.9, 0.1, 0, 0]),  # no EXIF date: its download time
    ]
    _write(index, images, OLD)
    taken, downloaded = images[0].sha256, images[1].sha256
    may_first = PointFilter(date_from=date(2020, 5, 1), date_to=date(2020, 5, 1))
    probe = np.array([1, 0, 0, 0], np.float32)
    assert _shas(index.search(probe, may_first)) == [taken]
    assert _shas(index.search(probe, PointFilter(date_to=date(2020, 4, 30)))) == []
    assert _shas(index.search(probe, PointFilter(date_from=date(2020, 5, 2)))) == [downloaded]
    assert _shas(index.search(probe, order="oldest")) == [taken, downloaded]
    assert _shas(index.search(probe, order="newest")) == [downloaded, taken]
    assert _shas(index.browse(order="newest")) == [downloaded, taken]
    assert _shas(index.browse(order="oldest", offset=1)) == [downloaded]
    assert _shas(index.browse(may_first, order="newest")) == [taken]
    point = index.point(taken)
    assert (point.date, point.camera) == (shot["taken_at"], "Canon EOS 5D")


def test_word_matching_reaches_the_camera_and_the_file_name(index: ImageStore) -> None:
    images = [
        _image(7, "https://a.example/x/IMG_2041.jpg", [0, 0, 0, 1], camera="Canon EOS 5D"),
        _image(8, "https://a.example/y/best.jpg", [1, 0, 0, 0]),
    ]
    _write(index, images, OLD)
    probe = np.array([1, 0, 0, 0], np.float32)
    assert index.search(probe, limit=1)[0].point.sha256 == images[1].sha256
    for word in ("canon", "IMG_2041"):
        fused = index.search(probe, limit=2, words=[word])
        assert _shas(fused) == [images[0].sha256, images[1].sha256]
        # reciprocal rank fusion with k=2: 1/(k+rank), ranks from 0, summed over the rankings
        assert [f.score for f in fused] == pytest.approx([1 / 3 + 1 / 2, 1 / 2])


def test_filters_paging_facets_and_vectors(index: ImageStore) -> None:
    rng = np.random.default_rng(3)
    images = []
    for n in range(12):
        vector = rng.normal(size=DIM).astype(np.float32)
        image = _image(20 + n, f"https://site{n % 3}.example/{n}.jpg", list(vector / np.linalg.norm(vector)))
        event = image.events[0].model_copy(
            update={"width": 100 * n, "content_type": "image/png" if n % 2 else "image/jpeg"}
        )
        images.append(ImageVector(image.sha256, image.vector, [event]))
    _write(index, images, OLD)
    probe = images[0].vector
    ranked = index.search(probe, limit=12)
    expected = sorted(images, key=lambda image: -float(image.vector @ probe))
    assert _shas(ranked) == [image.sha256 for image in expected]
    assert [f.score for f in ranked] == pytest.approx([float(image.vector @ probe) for image in expected], abs=1e-5)
    assert _shas(index.search(probe, limit=4, offset=4)) == _shas(ranked)[4:8]
    where = PointFilter(domains=("site1.example",), min_width=400, content_types=("image/png",))
    kept = {image.sha256 for n, image in enumerate(images) if n % 3 == 1 and n >= 4 and n % 2}
    assert set(_shas(index.search(probe, where, limit=12))) == kept
    assert set(_shas(index.search(probe, PointFilter(exclude_ids=(ranked[0].id,)), limit=12))) == (
        {image.sha256 for image in images} - {ranked[0].point.sha256}
    )
    assert all(f.score >= 0.5 for f in index.search(probe, min_score=0.5, limit=12))
    assert sorted(index.facets("domains")) == ["site0.example", "site1.example", "site2.example"]
    assert index.count() == 12
    np.testing.assert_allclose(index.vector_of(images[5].sha256), images[5].vector, atol=1e-6)
    assert index.vector_of("0" * 64) is None
    assert {point.sha256 for _, point in index.points(batch=5)} == {image.sha256 for image in images}
    assert {p.sha256 for _, p in index.points(where=PointFilter(domains=("site2.example",)))} == {
        image.sha256 for n, image in enumerate(images) if n % 3 == 2
    }
    (with_vector,) = index.search(probe, limit=1, with_vectors=True)
    np.testing.assert_allclose(with_vector.vector, probe, atol=1e-6)


def test_writing_again_merges_urls_into_one_point(index: ImageStore) -> None:
    data = jpeg(40)
    first, second = message_for(data, "https://a.example/40.jpg"), message_for(data, "https://b.example/40.jpg")
    vector = np.array([0, 1, 0, 0], np.float32)
    index_builds.ensure_serving(index, **OLD)
    serving = index.serving()
    assert index.write(serving, [ImageVector(first.sha256, vector, [first])], model="m1") == 1
    assert index.write(serving, [ImageVector(first.sha256, vector, [first])], model="m1") == 1  # a redelivery
    assert index.write(serving, [ImageVector(first.sha256, vector, [second])], model="m1") == 1
    assert index.count() == 1
    assert index.point(first.sha256).urls == ["https://a.example/40.jpg", "https://b.example/40.jpg"]


def test_modify_changes_or_deletes_the_points_a_filter_matches(index: ImageStore) -> None:
    """The verbs a source leaving a point needs: drop that source from the point that has it, and delete
    a point with no source left; each conditional on the revision read, as writes are."""
    images = [_image(50 + n, f"https://site{n}.example/{n}.jpg", [1, n, 0, 0]) for n in range(3)]
    _write(index, images, OLD)
    shared = images[0].events[0].model_copy(update={"url": "https://site1.example/again.jpg"})
    _write(index, [ImageVector(images[0].sha256, images[0].vector, [shared])], OLD)

    def without_site1(point: ImagePoint) -> ImagePoint | None:
        urls = [url for url in point.urls if "site1.example" not in url]
        return point.model_copy(update={"urls": urls, "domains": [u.split("/")[2] for u in urls]}) if urls else None

    before = index.point(images[0].sha256).revision
    assert index.modify(PointFilter(domains=("site1.example",)), without_site1) == 2
    assert index.point(images[0].sha256).urls == ["https://site0.example/0.jpg"]
    assert index.point(images[0].sha256).revision != before
    assert index.point(images[1].sha256) is None
    assert index.count() == 2
    assert index.modify(PointFilter(domains=("site1.example",)), without_site1) == 0


def test_delete_removes_points_by_id(index: ImageStore) -> None:
    images = [_image(60 + n, f"https://a.example/{n}.jpg", [1, n, 0, 0]) for n in range(3)]
    _write(index, images, OLD)
    ids = {point.sha256: pid for pid, point in index.points()}
    index.delete([ids[images[1].sha256]])
    assert {point.sha256 for _, point in index.points()} == {images[0].sha256, images[2].sha256}


def test_a_missing_or_mismatched_collection_is_said_so(index: ImageStore) -> None:
    probe = np.array([1, 0, 0, 0], np.float32)
    with pytest.raises(CollectionMissing):
        index.search(probe)
    with pytest.raises(CollectionMissing):
        index.browse(order="newest")
    assert (index.serving(), index.count(), index.facets("domains"), index.collection_model()) == (None, None, [], None)
    index_builds.ensure_serving(index, **OLD)
    with pytest.raises(CollectionMismatchError, match="8-dimensional"):
        index.search(np.ones(8, np.float32))


def test_settle_after_a_burst_keeps_every_point_searchable(index: ImageStore) -> None:
    images = [_image(70 + n, f"https://a.example/{n}.jpg", [1, n / 10, 0, 0]) for n in range(5)]
    _write(index, images, OLD)
    index.settle()
    assert index.count() == 5
    assert index.search(images[3].vector, limit=1)[0].point.sha256 == images[3].sha256
