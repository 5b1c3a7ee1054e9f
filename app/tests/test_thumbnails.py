"""Thumbnails: sized for the grid, made from the stored file only, never from a path outside IMAGES_DIR."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from search_app.search.thumbnails import ThumbnailError, thumbnail
from testkit.images import jpeg, png

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 50_000_000}


def store(images_dir: Path, data: bytes, ext: str) -> str:
    path = stored_path(sha256_hex(data), ext)
    write_atomic(images_dir, path, data)
    return path


@pytest.mark.parametrize(("data", "ext"), [(jpeg(1, (1600, 1200)), "jpg"), (png(2, (300, 900)), "png")])
def test_thumbnail_fits_the_size_and_is_a_small_jpeg(images_dir: Path, data: bytes, ext: str) -> None:
    path = store(images_dir, data, ext)
    thumb = thumbnail(images_dir, path, 256, **LIMITS)
    with Image.open(io.BytesIO(thumb)) as image:
        assert image.format == "JPEG"
        assert max(image.size) == 256
        original = Image.open(io.BytesIO(data)).size
        assert image.size[0] / image.size[1] == pytest.approx(original[0] / original[1], rel=0.02)
    assert len(thumb) < len(data)


def test_small_images_are_not_enlarged(images_dir: Path) -> None:
    path = store(images_dir, jpeg(3, (64, 48)), "jpg")
    with Image.open(io.BytesIO(thumbnail(images_dir, path, 256, **LIMITS))) as image:
        assert image.size == (64, 48)


@pytest.mark.parametrize(
    "path",
    ["../../etc/passwd", "/etc/passwd", "ab/cd/notahash.jpg", f"{'a' * 2}/{'a' * 2}/{'a' * 64}.exe"],
)
def test_paths_that_are_not_stored_images_are_refused(images_dir: Path, path: str) -> None:
    with pytest.raises(ThumbnailError, match="not a stored image path"):
        thumbnail(images_dir, path, 256, **LIMITS)


def test_a_symlink_out_of_the_images_directory_is_refused(images_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg(4))
    path = stored_path(sha256_hex(b"x"), "jpg")
    (images_dir / path).parent.mkdir(parents=True)
    (images_dir / path).symlink_to(outside)
    with pytest.raises(ThumbnailError, match="outside the images directory"):
        thumbnail(images_dir, path, 256, **LIMITS)


def test_missing_and_oversized_files_are_errors_not_crashes(images_dir: Path) -> None:
    with pytest.raises(ThumbnailError, match="missing"):
        thumbnail(images_dir, stored_path(sha256_hex(b"gone"), "jpg"), 256, **LIMITS)
    path = store(images_dir, jpeg(5, (400, 300)), "jpg")
    with pytest.raises(ThumbnailError, match="more than 1000 pixels"):
        thumbnail(images_dir, path, 256, max_bytes=10_000_000, max_pixels=1000)
    with pytest.raises(ThumbnailError, match="larger than 10 bytes"):
        thumbnail(images_dir, path, 256, max_bytes=10, max_pixels=50_000_000)


def test_transparent_parts_become_white_not_black(images_dir: Path) -> None:
    image = Image.new("RGBA", (100, 100), (0, 0, 0, 0))
    image.paste((200, 0, 0, 255), (0, 0, 50, 100))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    path = store(images_dir, buffer.getvalue(), "png")
    with Image.open(io.BytesIO(thumbnail(images_dir, path, 64, **LIMITS))) as thumb:
        assert thumb.getpixel((60, 32))[0] > 240  # was transparent: white
        assert thumb.getpixel((5, 32))[1] < 30  # was opaque red: still red


@pytest.mark.parametrize(("fmt", "ext"), [("HEIF", "heic"), ("AVIF", "avif"), ("JPEG", "jpg")])
def test_a_phone_photo_stored_sideways_gets_an_upright_thumbnail(images_dir: Path, fmt: str, ext: str) -> None:
    """EXIF Orientation 6 on a photo stored turned a quarter (HEIC: written as the file's own rotation)."""
    upright = Image.new("RGB", (300, 200), (20, 20, 20))
    upright.paste((240, 240, 240), (0, 0, 300, 60))  # a bright band along the top
    exif = Image.Exif()
    exif[0x0112] = 6
    fast = {"HEIF": {"enc_params": {"preset": "ultrafast"}}, "AVIF": {"speed": 10}}.get(fmt, {})
    buffer = io.BytesIO()
    upright.transpose(Image.Transpose.ROTATE_90).save(buffer, fmt, exif=exif.tobytes(), quality=90, **fast)
    path = store(images_dir, buffer.getvalue(), ext)
    with Image.open(io.BytesIO(thumbnail(images_dir, path, 150, **LIMITS))) as thumb:
        assert thumb.size == (150, 100)
        assert thumb.getpixel((75, 10))[0] > 200  # the band is at the top
        assert thumb.getpixel((75, 90))[0] < 60
