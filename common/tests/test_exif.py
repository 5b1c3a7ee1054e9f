"""The photo's own date, camera and orientation, read from real EXIF blocks written by Pillow into real
JPEG, PNG and WebP files and checked through ``inspect_image`` (what the downloader runs); broken EXIF
never refuses an image and never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from dyimages_common.images.checks import inspect_image
from dyimages_common.images.exif import NO_EXIF, ExifFacts, camera, orientation, read_exif, taken_at
from testkit.exif_photos import exif_block, photo
from testkit.images import jpeg

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 10_000_000}
PLUS_TWO = timezone(timedelta(hours=2))


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_a_camera_photo_gives_its_date_camera_and_orientation(fmt: str) -> None:
    data = photo(
        1, fmt, taken="2024:05:06 07:08:09", offset="+02:00", make="Canon", model="Canon EOS R5", orientation=6
    )
    info = inspect_image(data, **LIMITS)
    assert info.exif == ExifFacts(datetime(2024, 5, 6, 7, 8, 9, tzinfo=PLUS_TWO), "Canon EOS R5", 6)
    assert (info.width, info.height) == (64, 48)  # the JPEG's reduced-scale decode does not shrink the size


def test_a_photo_without_exif_has_none() -> None:
    assert inspect_image(jpeg(2), **LIMITS).exif == NO_EXIF


def test_a_clock_time_without_offset_is_read_as_utc() -> None:
    info = inspect_image(photo(3, taken="2023:12:31 23:30:00"), **LIMITS)
    assert info.exif.taken_at == datetime(2023, 12, 31, 23, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("make", "model", "expected"),
    [
        ("NIKON CORPORATION", "NIKON D750", "NIKON D750"),
        ("Apple", "iPhone 12 Pro", "Apple iPhone 12 Pro"),
        ("  SONY\x00\x00", "ILCE-7M3   ", "SONY ILCE-7M3"),
        (None, "X100V", "X100V"),
        ("FUJIFILM", None, "FUJIFILM"),
        ("Ca\x07non", "EOS R5", "EOS R5"),  # a control byte drops that part only
        ("M" * 200, "Model", "Model"),  # a part longer than any camera name is garbage
        ("Make", "x" * 128, ("Make " + "x" * 128)[:128]),  # the whole is cut to 128
    ],
)
def test_camera_names(make: str | None, model: str | None, expected: str) -> None:
    info = inspect_image(photo(4, make=make, model=model), **LIMITS)
    assert info.exif.camera == expected


@pytest.mark.parametrize(
    "values",
    [
        {"taken": "0000:00:00 00:00:00"},  # a cleared camera clock
        {"taken": "2024:02:30 10:00:00"},  # no such day
        {"taken": "2024:05:06 25:00:00"},
        {"taken": "1700:01:01 00:00:00"},  # before photography
        {"taken": "    :  :     :  :  "},  # the spec's "unknown"
        {"taken": "2024-05-06"},
        {"taken": "9" * 5000},  # huge
        {"taken": b"\xff\xfe\x00garbage"},  # not text
        {"taken": 20240506},  # a number
        {"orientation": 9},
        {"orientation": 0},
        {"model": b"\xff\xfe\xfd"},  # Latin-1 junk, not ASCII
    ],
)
def test_garbage_values_read_as_none_and_the_image_is_still_accepted(values: dict[str, object]) -> None:
    info = inspect_image(photo(5, "PNG", **values), **LIMITS)  # PNG: no 64 KiB cap on the block
    assert info.exif == NO_EXIF
    assert info.content_type == "image/png"


def test_an_invalid_offset_leaves_the_date_in_utc() -> None:
    for offset in ("garbage", "+25:00", "+02:99", 120):
        info = inspect_image(photo(6, taken="2024:01:02 03:04:05", offset=offset), **LIMITS)
        assert info.exif.taken_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC), offset


@pytest.mark.parametrize(
    "block",
    [
        b"garbage!!",
        b"Exif\x00\x00MM\x00*\x00\x00\xff\xff\x00",  # IFD0 offset past the end
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x01" * 40,  # 65535 entries announced, 3 there
        # one entry: the Exif IFD pointer, pointing 2 GB away
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x69\x87\x04\x00\x01\x00\x00\x00\xf0\xff\xff\x7f\x00\x00\x00\x00",
    ],
)
def test_a_corrupt_block_reads_as_no_exif(block: bytes) -> None:
    data = photo(7, exif=block)
    info = inspect_image(data, **LIMITS)
    assert info.exif == NO_EXIF
    assert read_exif(block) == NO_EXIF


def test_a_raw_block_reads_like_the_image_it_came_from() -> None:
    block = exif_block(taken="2020:02:02 02:02:02", offset="-05:00", make="GoPro", model="HERO9", orientation=3)
    facts = read_exif(block.tobytes())
    assert facts == ExifFacts(datetime(2020, 2, 2, 2, 2, 2, tzinfo=timezone(-timedelta(hours=5))), "GoPro HERO9", 3)


def test_the_field_readers_take_any_type_without_raising() -> None:
    for value in (None, 3.5, ["2024:01:01 00:00:00"], object(), b"", "", True):
        assert taken_at(value, value) is None
        assert camera(value, value) is None
        assert orientation(value) is None
    assert orientation(8) == 8


def test_a_date_written_as_undefined_bytes_is_still_read() -> None:
    """Some writers store the date with type UNDEFINED (bytes) instead of ASCII."""
    info = inspect_image(photo(8, taken=b"2022:07:08 09:10:11\x00"), **LIMITS)
    assert info.exif.taken_at == datetime(2022, 7, 8, 9, 10, 11, tzinfo=UTC)
