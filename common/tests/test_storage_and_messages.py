from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from dyimages_common.images.storage import UnsafePathError, resolve_stored_path, sha256_hex, stored_path, write_atomic
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.store.points import point_id, url_domain

pytestmark = pytest.mark.unit

SHA = sha256_hex(b"some image bytes")


def message(**changes: object) -> dict[str, object]:
    fields: dict[str, object] = {
        "sha256": SHA,
        "path": stored_path(SHA, "jpg"),
        "url": "https://example.org/a.jpg",
        "content_type": "image/jpeg",
        "width": 640,
        "height": 480,
        "bytes": 1234,
        "downloaded_at": datetime(2026, 11, 25, tzinfo=UTC),
    }
    fields.update(changes)
    return fields


def test_stored_path_is_content_addressed() -> None:
    assert stored_path(SHA, "png") == f"{SHA[:2]}/{SHA[2:4]}/{SHA}.png"


@pytest.mark.parametrize(
    "path",
    ["../etc/passwd", "/etc/passwd", f"{SHA[:2]}/{SHA[2:4]}/{SHA}.exe", f"zz/{SHA[2:4]}/{SHA}.jpg", "a.jpg", ""],
)
def test_paths_from_outside_are_refused(tmp_path: Path, path: str) -> None:
    with pytest.raises(UnsafePathError):
        resolve_stored_path(tmp_path, path)


def test_a_symlink_out_of_the_images_dir_is_refused(tmp_path: Path) -> None:
    images = tmp_path / "images"
    outside = tmp_path / "outside"
    (images / SHA[:2]).mkdir(parents=True)
    outside.mkdir()
    (images / SHA[:2] / SHA[2:4]).symlink_to(outside)
    with pytest.raises(UnsafePathError, match="outside"):
        resolve_stored_path(images, stored_path(SHA, "jpg"))


def test_write_atomic_leaves_no_temporary_files(tmp_path: Path) -> None:
    path = stored_path(SHA, "jpg")
    written = write_atomic(tmp_path, path, b"some image bytes")
    assert written.read_bytes() == b"some image bytes"
    assert write_atomic(tmp_path, path, b"some image bytes") == written
    assert sorted(p.name for p in written.parent.iterdir()) == [f"{SHA}.jpg"]


def test_message_round_trip() -> None:
    original = ImageDownloaded(**message())
    assert ImageDownloaded.model_validate_json(original.model_dump_json()) == original
    assert '"schema_version":1' in original.model_dump_json()


def test_exif_fields_are_optional_so_old_messages_still_validate() -> None:
    old = ImageDownloaded.model_validate_json(
        f'{{"schema_version":1,"sha256":"{SHA}","path":"{stored_path(SHA, "jpg")}","url":"https://example.org/a.jpg",'
        '"content_type":"image/jpeg","width":640,"height":480,"bytes":1234,"downloaded_at":"2026-11-25T00:00:00Z"}'
    )
    assert (old.taken_at, old.camera, old.orientation) == (None, None, None)
    new = ImageDownloaded(
        **message(taken_at=datetime(2020, 5, 1, 12, tzinfo=UTC), camera="Canon EOS 5D", orientation=6)
    )
    assert ImageDownloaded.model_validate_json(new.model_dump_json()) == new
    assert new.taken_at == datetime(2020, 5, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "changes",
    [
        {"schema_version": 2},
        {"sha256": "ABC"},
        {"path": "../../etc/passwd"},
        {"path": stored_path(sha256_hex(b"other"), "jpg")},
        {"content_type": "text/html"},
        {"url": "file:///etc/passwd"},
        {"width": 0},
        {"downloaded_at": datetime(2026, 11, 25)},  # naive: no time zone
        {"unexpected": 1},
        {"taken_at": datetime(2020, 5, 1)},  # naive EXIF date without an offset
        {"camera": "x" * 129},
        {"orientation": 0},
        {"orientation": 9},
    ],
)
def test_bad_messages_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ImageDownloaded(**message(**changes))


def test_point_ids_are_stable_and_distinct() -> None:
    assert point_id(SHA) == point_id(SHA)
    assert point_id(SHA) != point_id(sha256_hex(b"x"))
    assert url_domain("https://WWW.Example.org:8080/a.jpg") == "example.org"


def test_payload_urls_lists_urls_or_falls_back_to_the_old_single_url() -> None:
    from dyimages_common.store.points import payload_urls

    assert payload_urls({"urls": ["https://a/1.jpg", "https://b/1.jpg"], "url": "https://a/1.jpg"}) == [
        "https://a/1.jpg",
        "https://b/1.jpg",
    ]
    assert payload_urls({"url": "https://a/old.jpg"}) == ["https://a/old.jpg"]  # written before `urls`
    assert payload_urls({"urls": [], "url": None}) == []
