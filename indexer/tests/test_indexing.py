"""The indexer as a real process: real RabbitMQ, the real embedding service (tiny random-weight
OpenCLIP), an embedded Qdrant folder. Messages are published here the way the downloader does."""

from __future__ import annotations

from datetime import datetime

import pytest

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import write_atomic
from dyimages_common.process import exit_codes
from dyimages_common.store.builds import ensure_serving
from dyimages_common.store.points import point_id
from testkit.embedding import EmbeddingService
from testkit.images import jpeg
from testkit.index_points import open_index
from testkit.messages import message_for

pytestmark = pytest.mark.integration


def test_a_batch_is_indexed_and_searchable(rig, embedding_service: EmbeddingService) -> None:
    events = rig.images(1_000, 20)
    rig.publish(events)

    result = rig.run()

    assert result.returncode == 0, result.stderr[-3000:]
    points = {point.payload["sha256"]: point for point in rig.points()}
    assert set(points) == {event.sha256 for event in events}
    for event in events:
        point = points[event.sha256]
        assert point.id == point_id(event.sha256)
        assert point.payload["path"] == event.path
        assert point.payload["url"] == event.url
        assert point.payload["urls"] == [event.url]
        assert point.payload["domains"] == ["images.example"]
        assert point.payload["model"] == "dy-tiny"
        assert datetime.fromisoformat(point.payload["indexed_at"]).utcoffset().total_seconds() == 0
    with EmbeddingClient(embedding_service.url) as embedder:
        query = embedder.embed_image_bytes(jpeg(1_007))
    index = open_index(rig.qdrant_path)
    try:
        best = index.search(query, limit=1)[0]
    finally:
        index.close()
    assert best.point.sha256 == events[7].sha256
    assert rig.depths() == {"queued": 0, "dead_lettered": 0}


def test_the_same_image_twice_and_from_two_urls_is_one_point_with_both_urls(rig) -> None:
    (event,) = rig.images(2_000, 1)
    mirror = event.model_copy(update={"url": "https://mirror.example/copy.jpg"})
    rig.publish([event, event])
    assert rig.run().returncode == 0
    rig.publish([mirror, event])  # later: another URL for the same bytes, and a redelivery
    result = rig.run()

    assert result.returncode == 0, result.stderr[-3000:]
    (point,) = rig.points()
    assert point.payload["url"] == event.url
    assert point.payload["urls"] == [event.url, "https://mirror.example/copy.jpg"]
    assert point.payload["domains"] == ["images.example", "mirror.example"]
    assert rig.depths() == {"queued": 0, "dead_lettered": 0}


def test_poison_messages_are_dead_lettered_with_a_reason_and_the_rest_indexed(rig) -> None:
    good = rig.images(3_000, 6)
    garbage = b"this is not an image at all"
    not_an_image = message_for(garbage, "https://a.example/fake.jpg")
    write_atomic(rig.images_dir, not_an_image.path, garbage)
    missing = message_for(jpeg(3_999), "https://a.example/never-stored.jpg")
    wrong_version = good[0].model_dump_json().replace('"schema_version":1', '"schema_version":3').encode()
    poison = {
        b"{not json": "invalid_json",
        wrong_version: "unsupported_schema",
        not_an_image.model_dump_json().encode(): "not_an_image",
        missing.model_dump_json().encode(): "not_found",
    }
    rig.publish([good[0], good[1], *poison, good[2], good[3], good[4], good[5]])  # all in one batch

    result = rig.run(INDEXER_BATCH_SIZE="16")

    assert result.returncode == 0, result.stderr[-3000:]
    assert {point.payload["sha256"] for point in rig.points()} == {event.sha256 for event in good}
    assert rig.dead_reasons() == poison
    assert rig.depths() == {"queued": 0, "dead_lettered": 0}
    assert "dead-lettered a message (not_found)" in result.stderr


@pytest.mark.parametrize(
    ("dim", "model", "pretrained"),
    [(256, "dy-tiny", "none"), (512, "ViT-B-32", "none"), (512, "dy-tiny", "laion2b_s34b_b79k")],
    ids=["other-dimension", "other-model", "other-weights"],
)
def test_a_collection_of_another_model_is_refused_and_nothing_consumed(
    rig, dim: int, model: str, pretrained: str
) -> None:
    index = open_index(rig.qdrant_path)
    ensure_serving(index, dim=dim, model=model, pretrained=pretrained)
    index.close()
    rig.publish(rig.images(4_000, 3))

    result = rig.run()

    assert result.returncode == exit_codes.MODEL_MISMATCH
    assert "dyimages reindex" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("indexer: collection 'images_")
    assert rig.depths() == {"queued": 3, "dead_lettered": 0}
    assert rig.points() == []


def test_a_qdrant_folder_held_by_another_process_is_refused_in_one_line(rig) -> None:
    rig.publish(rig.images(4_100, 2))
    holder = open_index(rig.qdrant_path)
    try:
        result = rig.run()
    finally:
        holder.close()
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(f"indexer: cannot start: cannot open Qdrant (QDRANT_PATH={rig.qdrant_path})")
    )
    assert rig.depths() == {"queued": 2, "dead_lettered": 0}
