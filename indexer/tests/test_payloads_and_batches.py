"""Pure parts of the indexer: the point payload (ImagePoint.merged) and splitting a batch into images and refusals."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.reasons import Reason
from dyimages_common.store.points import REVISION_FIELD, ImagePoint
from indexer.batch import parse_batch
from testkit.images import jpeg
from testkit.messages import message_for

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def _payload(existing: dict | None, *events: ImageDownloaded) -> dict:
    old = ImagePoint.from_payload(existing) if existing is not None else None
    return ImagePoint.merged(old, list(events), model="m/none", indexed_at=NOW, revision="r1").to_payload()


def test_a_new_point_has_every_contract_field() -> None:
    event = message_for(jpeg(1), "https://www.Example.com/a.jpg")
    payload = _payload(None, event)
    assert payload["sha256"] == event.sha256
    assert payload["path"] == event.path
    assert payload["url"] == "https://www.Example.com/a.jpg"
    assert payload["urls"] == ["https://www.Example.com/a.jpg"]
    assert payload["domains"] == ["example.com"]
    assert (payload["content_type"], payload["width"], payload["height"]) == ("image/jpeg", 64, 48)
    assert payload["bytes"] == event.bytes
    assert datetime.fromisoformat(payload["downloaded_at"]) == event.downloaded_at
    assert payload["indexed_at"] == "2026-11-25T20:00:00Z"
    assert payload["model"] == "m/none"
    assert payload[REVISION_FIELD] == "r1"


def test_a_second_url_is_added_and_the_first_stays_first() -> None:
    data = jpeg(2)
    first = _payload(None, message_for(data, "https://a.example/x.jpg"))
    merged = _payload(first, message_for(data, "https://b.example/y.jpg"), message_for(data, "https://a.example/x.jpg"))
    assert merged["url"] == "https://a.example/x.jpg"
    assert merged["urls"] == ["https://a.example/x.jpg", "https://b.example/y.jpg"]
    assert merged["domains"] == ["a.example", "b.example"]
    assert merged["downloaded_at"] == first["downloaded_at"]


def test_a_redelivery_changes_no_url() -> None:
    event = message_for(jpeg(3), "https://a.example/x.jpg")
    again = _payload(_payload(None, event), event)
    assert again["urls"] == ["https://a.example/x.jpg"]
    assert again["domains"] == ["a.example"]


def test_messages_for_two_images_never_share_a_point() -> None:
    with pytest.raises(ValueError, match="different images"):
        _payload(None, message_for(jpeg(4), "https://a.example/1"), message_for(jpeg(5), "https://a.example/2"))


def test_a_batch_groups_messages_by_image_and_names_each_refusal() -> None:
    same = jpeg(6)
    good = message_for(same, "https://a.example/1.jpg")
    bodies = [
        good.model_dump_json().encode(),
        b"{not json",
        good.model_dump_json().replace('"schema_version":1', '"schema_version":3').encode(),
        good.model_dump_json().replace('"path":"', '"path":"../').encode(),
        message_for(same, "https://b.example/2.jpg").model_dump_json().encode(),
        message_for(jpeg(7), "https://a.example/3.jpg").model_dump_json().encode(),
    ]
    images, refusals = parse_batch(bodies)
    assert [(image.sha256, image.indices) for image in images] == [(good.sha256, [0, 4]), (images[1].sha256, [5])]
    assert [(refusal.index, refusal.reason) for refusal in refusals] == [
        (1, Reason.INVALID_JSON),
        (2, Reason.UNSUPPORTED_SCHEMA),
        (3, Reason.INVALID_MESSAGE),
    ]
    assert all(type(refusal.reason) is Reason and refusal.detail for refusal in refusals)
