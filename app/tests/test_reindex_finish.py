"""`dyimages reindex --finish` waits without reading every payload each second, and the legacy upgrade (a
collection really named like the alias) names the new collection before it deletes the old one.

Real stores: Qdrant Edge (the embedded default) and qdrant-client's embedded mode ("local", which refuses a
name over a collection as the Qdrant server does). :class:`Watched` wraps a real store and only counts the
calls made through it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dyimages_common.store import builds as index_builds
from dyimages_common.store.protocol import ImageStore
from search_app.ops.reindex import ReindexIncomplete, finish
from testkit.index_points import MODEL, add_point, fake_sha
from testkit.stores import opened_store

pytestmark = pytest.mark.integration

DIM = 8


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


class Watched:
    """A real store, counting the full scans (``points``) and the lookups by id (``point``) made through it."""

    def __init__(self, inner: ImageStore) -> None:
        self._inner = inner
        self.scans = self.lookups = self.counts = 0

    def points(self, *args: Any, **kwargs: Any) -> Any:
        self.scans += 1
        return self._inner.points(*args, **kwargs)

    def point(self, *args: Any, **kwargs: Any) -> Any:
        self.lookups += 1
        return self._inner.point(*args, **kwargs)

    def count(self, *args: Any, **kwargs: Any) -> Any:
        self.counts += 1
        return self._inner.count(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@pytest.fixture
def edge(tmp_path: Path) -> Iterator[ImageStore]:
    with opened_store("edge", tmp_path / "qdrant") as store:
        yield store


def test_finish_reads_counts_until_the_build_can_be_complete_then_looks_up_only_what_is_missing(
    edge: ImageStore,
) -> None:
    for n in (1, 2, 3):
        add_point(edge, fake_sha(n), unit(n), f"https://finish.example/{n}.jpg")
    name, resumed = index_builds.begin_build(edge, dim=DIM, model=MODEL, pretrained=None)
    assert not resumed
    watched = Watched(edge)
    expected = {fake_sha(n) for n in (1, 2, 3)}
    with pytest.raises(ReindexIncomplete, match="3 of 3 images"):
        finish(watched, expected, timeout_s=0.4, poll_s=0.02)  # type: ignore[arg-type]
    assert watched.counts >= 5  # it polled...
    assert (watched.scans, watched.lookups) == (0, 0)  # ...reading one count each time, no payload
    for n in (1, 2, 3):
        add_point(edge, fake_sha(n), unit(n), f"https://finish.example/{n}.jpg")  # the indexer's writes
    new, old = finish(watched, expected, timeout_s=5, poll_s=0.02)  # type: ignore[arg-type]
    assert new == name
    assert old is not None
    assert watched.scans == 0
    assert watched.lookups == 3  # each image looked up once, by id


@pytest.mark.parametrize("engine", ["edge", "local"])
def test_the_legacy_upgrade_serves_the_new_collection_and_deletes_the_old_one(engine: str, tmp_path: Path) -> None:
    with opened_store(engine, tmp_path / "qdrant") as store:
        store.create_collection(store.name, dim=DIM, model=MODEL, pretrained=None)  # made before aliases
        assert store.serving() == store.name
        name, _ = index_builds.begin_build(store, dim=DIM, model=MODEL, pretrained=None)
        add_point(store, fake_sha(1), unit(1), "https://legacy.example/1.jpg")
        new, old = index_builds.swap(store)
        assert (new, old) == (name, None)
        assert store.serving() == name
        assert store.names() == {store.name: name}
        assert [point.sha256 for _, point in store.points()] == [fake_sha(1)]


def test_on_edge_the_legacy_upgrade_names_the_new_collection_before_deleting_the_old(tmp_path: Path) -> None:
    """A delete that fails (the process killed there) leaves searches on the complete new collection."""
    with opened_store("edge", tmp_path / "qdrant") as store:
        store.create_collection(store.name, dim=DIM, model=MODEL, pretrained=None)
        name, _ = index_builds.begin_build(store, dim=DIM, model=MODEL, pretrained=None)
        add_point(store, fake_sha(1), unit(1), "https://legacy.example/1.jpg")

        class DeleteFails(Watched):
            def delete_collection(self, collection: str) -> bool:
                raise RuntimeError("killed while deleting")

        with pytest.raises(RuntimeError, match="killed"):
            index_builds.swap(DeleteFails(store))  # type: ignore[arg-type]
        assert store.serving() == name  # swapped before the delete
        assert [point.sha256 for _, point in store.points()] == [fake_sha(1)]
