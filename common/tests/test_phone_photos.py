"""Phone photos as they come: HEIC/HEIF and AVIF accepted within the same limits, turned upright by
their EXIF Orientation (or the file's own rotation) before the model sees them, and JPEGs decoded
no larger than the model needs. Every file is encoded here by the real encoders (x265 through
pillow-heif, libavif through Pillow)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image, ImageOps

from dyimages_common.images.checks import ImageRejected, decode_memory, inspect_image
from dyimages_common.images.decode import REDUCING_GAP, open_image
from dyimages_common.images.storage import sha256_hex, stored_path
from testkit.exif_photos import exif_block
from testkit.images import encode, make_image
from testkit.photo_library import broken_past_header

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 10_000_000, "max_pixels": 13_000_000}
FAST = {"HEIF": {"quality": 85, "enc_params": {"preset": "ultrafast"}}, "AVIF": {"quality": 85, "speed": 10}}


def _scene(size: tuple[int, int] = (320, 240)) -> Image.Image:
    """A picture with a clear top and left: a dark band along the top, a bright block at the left."""
    image = make_image(3, size)
    image.paste((10, 10, 10), (0, 0, size[0], size[1] // 5))
    image.paste((250, 250, 250), (0, size[1] // 3, size[0] // 6, size[1]))
    return image


def _mean_difference(a: Image.Image, b: Image.Image) -> float:
    assert a.size == b.size, (a.size, b.size)
    return float(np.abs(np.asarray(a, dtype=np.int16) - np.asarray(b, dtype=np.int16)).mean())


@pytest.mark.parametrize(("fmt", "ext", "mime"), [("HEIF", "heic", "image/heic"), ("AVIF", "avif", "image/avif")])
def test_heic_and_avif_are_accepted(fmt: str, ext: str, mime: str) -> None:
    data = encode(_scene((96, 64)), fmt, **FAST[fmt])
    info = inspect_image(data, **LIMITS)
    assert (info.format, info.extension, info.content_type, info.width, info.height) == (fmt, ext, mime, 96, 64)
    assert stored_path(sha256_hex(data), info.extension).endswith(f".{ext}")
    assert _mean_difference(open_image(data, **LIMITS), _scene((96, 64))) < 12  # the picture, not noise


@pytest.mark.parametrize(("fmt", "reason"), [("HEIF", "corrupt_image"), ("AVIF", "too_many_pixels")])
def test_a_heic_or_avif_bomb_is_refused_before_decoding(fmt: str, reason: str) -> None:
    """The header declares 12000x12000 (144 MP) over a 64x48 picture: Pillow reads the AVIF's size from
    it and the pixel cap refuses it before decoding; libheif checks the picture against the header and
    refuses to decode it. Neither decodes 144 MP."""
    data = encode(_scene((64, 48)), fmt, **FAST[fmt])
    at = data.index(b"ispe") + 8
    bomb = data[:at] + struct.pack(">II", 12_000, 12_000) + data[at + 8 :]
    with pytest.raises(ImageRejected) as refused:
        inspect_image(bomb, **LIMITS)
    assert refused.value.reason == reason


def test_a_heic_smaller_in_its_header_than_in_its_stream_is_refused() -> None:
    """The header says 64x48 (within the cap), the coded picture is 2000x1500: libheif refuses to decode
    past the header's size (its security limit), so nothing larger than the checked size is decoded."""
    data = encode(Image.new("RGB", (2000, 1500), (90, 120, 150)), "HEIF", **FAST["HEIF"])
    at = data.index(b"ispe") + 8
    with pytest.raises(ImageRejected) as refused:
        inspect_image(data[:at] + struct.pack(">II", 64, 48) + data[at + 8 :], max_bytes=10**7, max_pixels=64 * 48)
    assert refused.value.reason == "corrupt_image"


def test_an_avif_smaller_in_its_header_than_in_its_stream_is_decoded_at_the_header_size() -> None:
    data = encode(Image.new("RGB", (2000, 1500), (90, 120, 150)), "AVIF", **FAST["AVIF"])
    at = data.index(b"ispe") + 8
    info = inspect_image(data[:at] + struct.pack(">II", 64, 48) + data[at + 8 :], max_bytes=10**7, max_pixels=64 * 48)
    assert (info.width, info.height) == (64, 48)


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_a_truncated_heic_or_avif_is_refused(fmt: str) -> None:
    data = encode(_scene(), fmt, **FAST[fmt])
    with pytest.raises(ImageRejected) as refused:
        inspect_image(data[: len(data) * 2 // 3], **LIMITS)
    assert refused.value.reason in ("corrupt_image", "not_an_image")


def test_the_header_check_of_a_camera_photo_decodes_nothing_yet_refuses_a_truncated_copy() -> None:
    """``decode=False`` (the library's check: the embedding service decodes the photo) reads a JPEG's or
    HEIC's header and structure only: data broken past the header passes, for the service to refuse;
    a copy cut short is still refused here, as the full check refuses it."""
    broken = broken_past_header(21, size=(640, 480))
    assert inspect_image(broken, **LIMITS, decode=False).format == "JPEG"
    with pytest.raises(ImageRejected) as decoded:
        inspect_image(broken, **LIMITS)
    assert decoded.value.reason == "corrupt_image"
    jpeg_data = encode(make_image(22, (640, 480)), "JPEG")
    heic_data = encode(_scene(), "HEIF", **FAST["HEIF"])
    for whole in (jpeg_data, heic_data):
        assert inspect_image(whole, **LIMITS, decode=False) == inspect_image(whole, **LIMITS)
        for cut in (len(whole) // 2, len(whole) - 3):
            with pytest.raises(ImageRejected) as refused:
                inspect_image(whole[:cut], **LIMITS, decode=False)
            assert refused.value.reason == "corrupt_image", refused.value
    png_data = encode(make_image(23, (640, 480)), "PNG")  # not a camera's format: decoded either way
    with pytest.raises(ImageRejected):
        inspect_image(png_data[: len(png_data) // 2], **LIMITS, decode=False)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "AVIF"])
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_a_photo_stored_sideways_is_decoded_upright(fmt: str, orientation: int) -> None:
    """The stored pixels are the upright scene turned the other way; EXIF says how to turn them back.
    The decode equals Pillow's own ``ImageOps.exif_transpose`` and the upright scene."""
    upright_scene = _scene()
    stored = upright_scene.transpose(
        {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    )
    data = encode(stored, fmt, exif=exif_block(orientation=orientation).tobytes(), **FAST.get(fmt, {}))
    decoded = open_image(data, **LIMITS)
    assert decoded.size == upright_scene.size
    reference = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    assert np.array_equal(np.asarray(decoded), np.asarray(reference))
    assert _mean_difference(decoded, upright_scene) < 12
    unturned = open_image(encode(stored, fmt, **FAST.get(fmt, {})), **LIMITS)  # the same photo without EXIF
    assert unturned.size != upright_scene.size or _mean_difference(unturned, upright_scene) > 30


def test_a_heic_with_its_own_rotation_is_turned_once() -> None:
    """pillow-heif writes the orientation as the file's rotation; libheif applies it and reports 1."""
    upright_scene = _scene()
    stored = upright_scene.transpose(Image.Transpose.ROTATE_90)
    data = encode(stored, "HEIF", exif=exif_block(orientation=6).tobytes(), **FAST["HEIF"])
    decoded = open_image(data, **LIMITS)
    assert decoded.size == upright_scene.size
    assert _mean_difference(decoded, upright_scene) < 12


def test_a_large_jpeg_is_decoded_at_the_smallest_scale_that_covers_the_model() -> None:
    """Both sides stay at least REDUCING_GAP (1.5) times the model's side, so the resize still shrinks 1.5x."""
    assert REDUCING_GAP == 1.5
    data = encode(make_image(4, (4000, 3000)), "JPEG", quality=90)
    assert open_image(data, **LIMITS, min_side=64).size == (500, 375)  # 1/8: both sides still >= 1.5 x 64
    assert open_image(data, **LIMITS, min_side=224).size == (500, 375)  # 1/8: 375 >= 1.5 x 224 = 336
    assert open_image(data, **LIMITS, min_side=251).size == (1000, 750)  # 1/4: 1/8 would give 375 < 1.5 x 251
    assert open_image(data, **LIMITS, min_side=501).size == (2000, 1500)  # 1/2: 1/4 would give 750 < 1.5 x 501
    assert open_image(data, **LIMITS).size == (4000, 3000)  # no side given: full size
    small = encode(make_image(5, (300, 200)), "JPEG")
    assert open_image(small, **LIMITS, min_side=224).size == (300, 200)  # never below the model's side


def test_a_sideways_jpeg_is_reduced_and_turned() -> None:
    stored = make_image(6, (4000, 3000))
    data = encode(stored, "JPEG", exif=exif_block(orientation=6).tobytes())
    assert open_image(data, **LIMITS, min_side=224).size == (375, 500)


def test_a_truncated_jpeg_is_still_refused_when_reduced() -> None:
    data = encode(make_image(7, (2000, 1500)), "JPEG", progressive=True)
    with pytest.raises(ImageRejected) as refused:
        open_image(data[: len(data) // 2], **LIMITS, min_side=224)
    assert refused.value.reason == "corrupt_image"


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_decode_memory_counts_heic_and_avif_as_decoded_by_their_libraries(fmt: str) -> None:
    data = encode(_scene((400, 300)), fmt, **FAST[fmt])
    assert decode_memory(data, **LIMITS) >= 400 * 300 * 4 * 6  # planes, RGB and Pillow's copy
