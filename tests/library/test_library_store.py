"""The store verbs the photo library needs, on every engine of the seam (testkit.stores.ENGINES): a point
holds URLs and library paths, a newer list of paths replaces an older one whatever the order, a point's
paths change without a vector, a point with no source left is deleted, and a folder filters by prefix."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import numpy as np
import pytest

from dyimages_common.images.storage import sha256_hex
from dyimages_common.messaging.messages import LibraryFiles
from dyimages_common.store import builds
from dyimages_common.store.errors import VectorNeeded
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import ImageVector, PointFilter
from testkit.images import jpeg
from testkit.messages import message_for
from testkit.stores import ENGINES, memory_folder, opened_store

pytestmark = pytest.mark.unit

DIM = 4


@pytest.fixture(params=ENGINES)
def store(request: pytest.FixtureRequest) -> Iterator[tuple[ImageStore, str]]:
    with memory_folder() as folder, opened_store(request.param, folder / "store") as opened:
        builds.ensure_serving(opened, dim=DIM, model="m", pretrained="none")
        yield opened, opened.serving() or ""


def library(data: bytes, seq: int, *paths: str) -> LibraryFiles:
    return LibraryFiles(
        sha256=sha256_hex(data),
        paths=paths,
        seq=seq,
        content_type="image/jpeg",
        width=64,
        height=48,
        bytes=len(data),
        modified_at=datetime(2024, 7, 14, tzinfo=UTC),
    )


def vector(*values: float) -> np.ndarray:
    found = np.asarray(values, dtype=np.float32)
    return found / np.linalg.norm(found)


def test_paths_change_without_a_vector_and_an_older_list_never_wins(store: tuple[ImageStore, str]) -> None:
    index, serving = store
    data = jpeg(1)
    sha = sha256_hex(data)
    index.write(serving, [ImageVector(sha, vector(1, 0, 0, 0), [library(data, 5, "a.jpg")])], model="m")
    index.write(serving, [ImageVector(sha, None, [library(data, 7, "2024/a.jpg", "copy.jpg")])], model="m")
    index.write(serving, [ImageVector(sha, None, [library(data, 6, "stale.jpg")])], model="m")  # arrives late
    point = index.point(sha, serving)
    assert point is not None
    assert (point.library_paths, point.library_seq, point.folders) == (["2024/a.jpg", "copy.jpg"], 7, ["2024"])
    np.testing.assert_allclose(index.vector_of(sha), vector(1, 0, 0, 0), atol=1e-6)  # kept, not rewritten
    assert index.held([sha, sha256_hex(jpeg(2))], serving) == {sha}


def test_a_point_left_without_a_source_is_deleted_one_with_a_url_stays(store: tuple[ImageStore, str]) -> None:
    index, serving = store
    both, only_library = jpeg(3), jpeg(4)
    web = message_for(both, "https://example.org/both.jpg")
    index.write(
        serving,
        [
            ImageVector(web.sha256, vector(0, 1, 0, 0), [web, library(both, 1, "both.jpg")]),
            ImageVector(sha256_hex(only_library), vector(0, 0, 1, 0), [library(only_library, 2, "only.jpg")]),
        ],
        model="m",
    )
    index.write(
        serving,
        [
            ImageVector(web.sha256, None, [library(both, 3)]),
            ImageVector(sha256_hex(only_library), None, [library(only_library, 4)]),
            ImageVector(sha256_hex(jpeg(5)), None, [library(jpeg(5), 5)]),  # never indexed: nothing to do
        ],
        model="m",
    )
    kept = index.point(web.sha256, serving)
    assert kept is not None
    assert (kept.urls, kept.library_paths, kept.path) == (["https://example.org/both.jpg"], [], web.path)
    assert index.point(sha256_hex(only_library), serving) is None
    assert index.count(serving) == 1


def test_a_vectorless_write_of_a_point_that_is_gone_asks_for_the_vector(store: tuple[ImageStore, str]) -> None:
    index, serving = store
    data = jpeg(6)
    with pytest.raises(VectorNeeded):
        index.write(serving, [ImageVector(sha256_hex(data), None, [library(data, 1, "new.jpg")])], model="m")
    assert index.count(serving) == 0


def test_the_folder_filter_matches_a_folder_and_everything_below_it(store: tuple[ImageStore, str]) -> None:
    index, serving = store
    photos = {"2024/summer/a.jpg": jpeg(7), "2024/b.jpg": jpeg(8), "2024x/c.jpg": jpeg(9), "d.jpg": jpeg(10)}
    index.write(
        serving,
        [
            ImageVector(sha256_hex(data), vector(1, number, 0, 1), [library(data, number + 1, path)])
            for number, (path, data) in enumerate(photos.items())
        ],
        model="m",
    )

    def found(folder: str) -> set[str]:
        hits = index.search(vector(1, 1, 0, 1), PointFilter(folder=folder), limit=10)
        return {path for hit in hits for path in hit.point.library_paths}

    assert found("2024") == {"2024/summer/a.jpg", "2024/b.jpg"}
    assert found("2024/summer") == {"2024/summer/a.jpg"}
    assert found("2024x") == {"2024x/c.jpg"}
    assert found("summer") == set()
