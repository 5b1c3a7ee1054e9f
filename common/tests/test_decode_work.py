"""Files small in bytes but slow to decode are refused as ``too_complex`` before any decoding.

Each hostile file is built here and paired with a control just under the limit that is accepted,
so the refusal is the count's doing, not a broken file's. No timing: the check is structural.
"""

from __future__ import annotations

import io
import random
import struct
import zlib

import pytest
from PIL import Image

from dyimages_common.images.checks import ImageRejected, inspect_image
from dyimages_common.images.decode import open_image
from dyimages_common.images.decode_work import (
    MAX_GIF_BLOCKS_BEFORE_IMAGE,
    MAX_GIF_COMMENT_BYTES,
    MAX_JPEG_FILL_BYTES,
    MAX_JPEG_MARKERS,
    MAX_JPEG_SCANS,
    PNG_BYTES_PER_CHUNK,
    PNG_FREE_CHUNKS,
)
from testkit.images import gif, jpeg, make_image

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 50_000_000}


def _reason(data: bytes) -> str | None:
    try:
        inspect_image(data, **LIMITS)
    except ImageRejected as exc:
        return exc.reason
    return None


def _progressive_jpeg_with_scans(scans: int) -> bytes:
    """A flat 2048x2048 progressive JPEG (libjpeg's 10 scans), its last scan repeated: each copy is
    under 100 bytes, and each is one more pass of the decoder over all 65,536 blocks."""
    buffer = io.BytesIO()
    Image.new("RGB", (2048, 2048), (120, 130, 140)).save(buffer, "JPEG", progressive=True)
    data = buffer.getvalue()
    assert data.count(b"\xff\xda") == 10  # FF DA cannot occur inside entropy-coded data
    last_scan = data[data.rfind(b"\xff\xda") : -2]
    return data[:-2] + last_scan * (scans - 10) + b"\xff\xd9"


def test_a_progressive_jpeg_with_hundreds_of_scans_is_refused() -> None:
    hostile = _progressive_jpeg_with_scans(500)
    assert len(hostile) < 100_000
    assert _reason(hostile) == "too_complex"
    assert _reason(_progressive_jpeg_with_scans(MAX_JPEG_SCANS)) is None
    with pytest.raises(ImageRejected, match="too_complex"):  # query images too
        open_image(hostile, **LIMITS)


def test_a_jpeg_with_thousands_of_markers_is_refused() -> None:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (1, 2, 3)).save(buffer, "JPEG")
    data = buffer.getvalue()
    comment = b"\xff\xfe\x00\x03x"  # a COM segment: marker, length 3, one byte
    assert _reason(data[:2] + comment * (MAX_JPEG_MARKERS + 10) + data[2:]) == "too_complex"
    assert _reason(data[:2] + comment * 100 + data[2:]) is None


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def _png(width: int, height: int, pixels: bytes, *, idat_size: int, before: bytes = b"") -> bytes:
    compressed = zlib.compress(pixels)
    idats = b"".join(
        _chunk(b"IDAT", compressed[start : start + idat_size]) for start in range(0, len(compressed), idat_size)
    )
    header = _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))  # 8-bit grey
    return b"\x89PNG\r\n\x1a\n" + header + before + idats + _chunk(b"IEND", b"")


def test_a_png_with_100k_chunks_is_refused() -> None:
    rows = b"".join(b"\x00" + bytes(range(64)) for _ in range(48))
    hostile = _png(64, 48, rows, idat_size=1 << 20, before=_chunk(b"tEXt", b"k\x00v") * 100_000)
    assert len(hostile) < 2_000_000
    assert _reason(hostile) == "too_complex"
    # The same image, its chunks within the allowance, is accepted.
    allowed = PNG_FREE_CHUNKS - 3  # IHDR, IDAT and IEND
    assert _reason(_png(64, 48, rows, idat_size=1 << 20, before=_chunk(b"tEXt", b"k\x00v") * allowed)) is None


def test_a_large_png_in_small_idat_chunks_is_accepted() -> None:
    """Encoders that write 8 KiB IDAT chunks: well inside one chunk per PNG_BYTES_PER_CHUNK bytes."""
    noise = random.Random(1).randbytes(3000 * 3000)  # incompressible: about 9 MB of pixel data
    rows = b"".join(b"\x00" + noise[row * 3000 : (row + 1) * 3000] for row in range(3000))
    data = _png(3000, 3000, rows, idat_size=8192)
    assert data.count(b"IDAT") > PNG_FREE_CHUNKS  # more chunks than the free allowance alone
    assert len(data) // 8192 < len(data) // PNG_BYTES_PER_CHUNK
    assert _reason(data) is None


def _gif_with_comment(sub_blocks: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("P", (16, 16), 1).save(buffer, "GIF")
    data = buffer.getvalue()
    flags = data[10]
    start = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
    comment = b"\x21\xfe" + b"\x01a" * sub_blocks + b"\x00"  # one-byte data sub-blocks
    return data[:start] + comment + data[start:]


def test_a_gif_with_a_million_tiny_blocks_before_the_image_is_refused() -> None:
    assert _reason(_gif_with_comment(1_000_000)) == "too_complex"
    assert _reason(_gif_with_comment(MAX_GIF_BLOCKS_BEFORE_IMAGE - 2)) is None  # + the terminator


def test_a_gif_with_thousands_of_frames_is_checked_by_its_first_frame() -> None:
    """Only the first frame is decoded and used; later frames are never read, so their number
    costs nothing and is not limited. Shown by a GIF of 3,000 frames whose frames after the
    first are cut off: accepted, so nothing after the first frame was decoded."""
    frames = [Image.new("P", (8, 8), index % 256) for index in range(3000)]
    for index, frame in enumerate(frames):
        frame.putpixel((index % 8, index // 8 % 8), (index + 1) % 256)
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()
    assert Image.open(io.BytesIO(data)).n_frames == 3000
    assert _reason(data) is None
    second_frame = data.index(b"\x21\xf9", data.index(b"\x2c") + 1)  # the next frame's control block
    assert _reason(data[:second_frame] + b"garbage") is None


def test_a_jpeg_is_decoded_at_one_eighth_scale_and_every_scan_is_read() -> None:
    """What the docs say is checked for a JPEG: the whole stream at reduced scale, not a full decode."""
    from dyimages_common.images.checks import decode_fully

    buffer = io.BytesIO()
    Image.frombytes("RGB", (1024, 768), random.Random(2).randbytes(1024 * 768 * 3)).save(
        buffer, "JPEG", progressive=True
    )
    data = buffer.getvalue()
    image = Image.open(io.BytesIO(data))
    decode_fully(image)
    assert image.size == (128, 96)
    last_scan = data.rfind(b"\xff\xda")
    assert _reason(data[: (last_scan + len(data)) // 2]) == "corrupt_image"  # cut inside the last scan


# -- reproduced regressions: accepted before, each open took seconds or hundreds of MB ------------


def test_a_gif_with_a_stray_byte_before_200k_comment_blocks_is_refused() -> None:
    """Pillow skips a byte that is no block and reads on, keeping every comment sub-block: the walk
    that stopped at the first such byte accepted this file (+419 MB and a second per 10 MB file)."""
    hostile = _gif_with_comment(200_000)
    start = hostile.index(b"\x21\xfe")
    hostile = hostile[:start] + b"\x00" + hostile[start:]
    assert _reason(hostile) == "too_complex"
    stray_then_comment = _gif_with_comment(MAX_GIF_BLOCKS_BEFORE_IMAGE // 2)
    start = stray_then_comment.index(b"\x21\xfe")
    assert _reason(stray_then_comment[:start] + b"\x00" + stray_then_comment[start:]) is None


def test_a_gif_with_stray_bytes_alone_is_refused() -> None:
    data = gif(1)
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    assert _reason(data[:start] + b"\x00" * 100_000 + data[start:]) == "too_complex"
    assert _reason(data[:start] + b"\x00" * 100 + data[start:]) is None


def test_a_gif_comment_over_the_cap_is_refused_even_in_few_blocks() -> None:
    data = gif(2)
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    comment = b"\x21\xfe" + (b"\xff" + b"c" * 255) * (MAX_GIF_COMMENT_BYTES // 255 + 1) + b"\x00"
    assert _reason(data[:start] + comment + data[start:]) == "too_complex"


def test_a_jpeg_with_5_mb_of_fill_after_soi_is_refused() -> None:
    """Pillow walks bytes between segments one at a time in Python (1.9 s per open for this file)."""
    data = jpeg(3)
    assert _reason(data[:2] + b"\xff" * 5_000_000 + data[2:]) == "too_complex"
    assert _reason(data[:2] + b"\xff" * (MAX_JPEG_FILL_BYTES - 10) + data[2:]) is None


def test_a_jpeg_with_an_early_eoi_is_walked_as_pillow_reads_it() -> None:
    """Pillow reads on past an EOI before the first scan, so the walk does too."""
    data = jpeg(4)
    assert _reason(data[:2] + b"\xff\xd9" + b"\x00" * 1_000_000 + data[2:]) == "too_complex"


@pytest.mark.parametrize(
    ("segment", "count"),
    [
        (b"\xff\xc0\xff\xff\x08\x00\x30\x00\x40\x03" + b"\x01" * 65527, 20),  # SOF: three bytes at a time
        (b"\xff\xdb\xff\xff" + b"\x00" * 65533, 20),  # DQT: a table at a time, each a copy of the rest
        (b"\xff\xe1\x00\x10Exif\x00\x00" + b"\x00" * 8, 50),  # Exif: each one re-copies the joined block
        (b"\xff\xed\xff\xffPhotoshop 3.0\x00" + b"8BIM\x00\x00\x00\x00\x00\x00\x00\x00" * 4094, 20),
    ],
    ids=["sof", "dqt", "exif", "photoshop"],
)
def test_jpeg_segments_pillow_parses_in_python_are_capped(segment: bytes, count: int) -> None:
    data = jpeg(5)
    assert _reason(data[:2] + segment * count + data[2:]) == "too_complex"


def test_a_phone_jpeg_with_a_multi_picture_index_is_a_jpeg() -> None:
    """Phones write an MPF index (depth or gain map after the photo); Pillow calls such a file MPO."""
    first, second = make_image(6, (64, 48)), make_image(7, (32, 24))
    buffer = io.BytesIO()
    first.save(buffer, "MPO", save_all=True, append_images=[second])
    assert Image.open(io.BytesIO(buffer.getvalue())).format == "MPO"
    info = inspect_image(buffer.getvalue(), **LIMITS)
    assert (info.format, info.extension, info.content_type, info.width) == ("JPEG", "jpg", "image/jpeg", 64)
