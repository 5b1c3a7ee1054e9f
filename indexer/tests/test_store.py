"""Writing points on each embedded engine (Qdrant Edge and qdrant-client's embedded mode, the real engines).

The race tests make a second writer (another indexer replica) write the same point between this
writer's read and its write, by letting it in just before the first conditional write.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store import builds as index_builds
from dyimages_common.store.engine import Engine
from dyimages_common.store.factory import open_engine
from dyimages_common.store.points import point_id
from dyimages_common.store.types import CollectionModel, ImageVector, PointFilter, Row
from dyimages_common.store.writes import write_images
from indexer.embedder import ModelChanged
from indexer.store import Store, StoreUnavailable
from testkit.images import jpeg
from testkit.messages import message_for
from testkit.procs import free_port
from testkit.stores import EMBEDDED, memory_folder, store_settings

pytestmark = pytest.mark.unit

DIM = 8
MODEL = "dy-tiny/none"


class InterleavingEngine:
    """A real engine that runs ``before_first_write`` once, just before its first write."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self.before_first_write: Callable[[Engine], None] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._engine, name)

    def _hook(self) -> None:
        hook, self.before_first_write = self.before_first_write, None
        if hook is not None:
            hook(self._engine)

    def insert_new(self, collection: str, rows: Any) -> None:
        self._hook()
        self._engine.insert_new(collection, rows)

    def update_if(self, collection: str, rows: Any, revision: str | None) -> None:
        self._hook()
        self._engine.update_if(collection, rows, revision)


@pytest.fixture(params=EMBEDDED)
def client(request: pytest.FixtureRequest) -> Iterator[InterleavingEngine]:
    with memory_folder() as folder:
        engine = open_engine(store_settings(request.param, folder))
        engine.create_collection("images", CollectionModel(name="images", model=MODEL, dim=DIM, weights=None))
        yield InterleavingEngine(engine)
        engine.close()


def _image(*events: ImageDownloaded, seed: int = 0) -> ImageVector:
    vector = np.random.default_rng(seed).normal(size=DIM).astype(np.float32)
    return ImageVector(events[0].sha256, vector / np.linalg.norm(vector), list(events))


def _urls(client: Engine, sha: str) -> list[str]:
    (row,) = client.retrieve("images", [point_id(sha)])
    return row.payload["urls"]


def test_a_batch_becomes_one_point_per_image(client: InterleavingEngine) -> None:
    events = [message_for(jpeg(seed), f"https://a.example/{seed}.jpg") for seed in range(5)]
    assert write_images(client, "images", [_image(event, seed=i) for i, event in enumerate(events)], model=MODEL) == 1
    assert client.count("images") == 5
    probe = _image(events[3], seed=3).vector
    (hit,) = client.query(
        "images", probe, PointFilter(), min_score=None, limit=1, offset=0, words=(), depth=1, vectors=False
    )
    assert hit.id == point_id(events[3].sha256)
    assert hit.payload["model"] == MODEL


def test_writing_again_overwrites_and_adds_the_new_url(client: InterleavingEngine) -> None:
    data = jpeg(1)
    first, second = message_for(data, "https://a.example/1.jpg"), message_for(data, "https://b.example/1.jpg")
    write_images(client, "images", [_image(first)], model=MODEL)
    write_images(client, "images", [_image(first)], model=MODEL)  # a redelivery
    write_images(client, "images", [_image(second)], model=MODEL)
    assert client.count("images") == 1
    assert _urls(client, first.sha256) == ["https://a.example/1.jpg", "https://b.example/1.jpg"]


def test_a_replica_inserting_the_same_new_image_meanwhile_loses_no_url(client: InterleavingEngine) -> None:
    data = jpeg(2)
    mine, theirs = message_for(data, "https://mine.example/2.jpg"), message_for(data, "https://theirs.example/2.jpg")
    client.before_first_write = lambda other: write_images(other, "images", [_image(theirs)], model=MODEL)
    assert write_images(client, "images", [_image(mine)], model=MODEL) == 2
    assert client.count("images") == 1
    assert _urls(client, mine.sha256) == ["https://theirs.example/2.jpg", "https://mine.example/2.jpg"]


def test_a_replica_updating_the_same_point_meanwhile_loses_no_url(client: InterleavingEngine) -> None:
    data = jpeg(3)
    first = message_for(data, "https://first.example/3.jpg")
    mine, theirs = message_for(data, "https://mine.example/3.jpg"), message_for(data, "https://theirs.example/3.jpg")
    write_images(client, "images", [_image(first)], model=MODEL)
    client.before_first_write = lambda other: write_images(other, "images", [_image(theirs)], model=MODEL)
    assert write_images(client, "images", [_image(mine)], model=MODEL) == 2
    assert _urls(client, first.sha256) == [
        "https://first.example/3.jpg",
        "https://theirs.example/3.jpg",
        "https://mine.example/3.jpg",
    ]


def test_a_replica_whose_round_also_wrote_another_point_of_this_batch_loses_no_url(
    client: InterleavingEngine,
) -> None:
    """Revisions are one token per write round. A point another replica changed, in a round that also
    wrote a *different* point of this batch, carries a revision this writer read for that other point:
    the condition must be the revision read for each point, not any revision read in the batch."""
    a_data, b_data = jpeg(4), jpeg(5)
    a_first, b_first = (
        message_for(a_data, "https://first.example/a.jpg"),
        message_for(b_data, "https://first.example/b.jpg"),
    )
    write_images(client, "images", [_image(a_first)], model=MODEL)
    write_images(client, "images", [_image(b_first)], model=MODEL)
    theirs = "https://theirs.example/a.jpg"

    def other_replica(other: Engine) -> None:
        # The other replica's round wrote B (read by this writer with that round's token) and now A.
        (b_row,) = other.retrieve("images", [point_id(b_first.sha256)])
        (a_row,) = other.retrieve("images", [point_id(a_first.sha256)], vectors=True)
        payload = {**a_row.payload, "urls": [*a_row.payload["urls"], theirs], "revision": b_row.payload["revision"]}
        other.update_if("images", [Row(id=a_row.id, payload=payload, vector=a_row.vector)], a_row.payload["revision"])

    client.before_first_write = other_replica
    a_mine, b_mine = (
        message_for(a_data, "https://mine.example/a.jpg"),
        message_for(b_data, "https://mine.example/b.jpg"),
    )
    write_images(client, "images", [_image(a_mine), _image(b_mine, seed=1)], model=MODEL)
    assert _urls(client, a_first.sha256) == ["https://first.example/a.jpg", theirs, "https://mine.example/a.jpg"]
    assert _urls(client, b_first.sha256) == ["https://first.example/b.jpg", "https://mine.example/b.jpg"]


@pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning")
async def test_an_unreachable_qdrant_server_is_a_fault_to_retry_not_a_crash() -> None:
    """A real client against a port where no Qdrant server listens: the indexer backs off on this."""
    settings = load_settings(QdrantSettings, qdrant_host="127.0.0.1", qdrant_port=free_port())
    store = Store(settings)
    try:
        with pytest.raises(StoreUnavailable, match="Qdrant is not answering"):
            await store.open(dim=DIM, model=MODEL, pretrained="none")
    finally:
        await store.close()


async def test_a_swap_to_another_model_under_a_running_indexer_stops_it(qdrant_path: Path) -> None:
    """After `dyimages reindex` swapped the alias to another model's collection, this indexer's vectors
    have no target: the write says the model changed (the indexer stops, exit 4) instead of failing on."""
    store = Store(load_settings(QdrantSettings, qdrant_path=qdrant_path))  # the default engine, Edge
    try:
        await store.open(dim=DIM, model=MODEL, pretrained="none")
        event = message_for(jpeg(7), "https://a.example/7.jpg")
        assert await store.write([_image(event)], model=MODEL) == 1
        index_builds.begin_build(store.index, dim=DIM, model="other/none", pretrained="none")
        assert await store.write([_image(event)], model=MODEL) == 1  # the old model still serves: written
        index_builds.swap(store.index)
        with pytest.raises(ModelChanged, match="the index changed under this indexer"):
            await store.write([_image(event)], model=MODEL)
    finally:
        await store.close()
