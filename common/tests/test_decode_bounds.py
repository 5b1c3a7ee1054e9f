"""Property: every file the checks accept opens and decodes within the stated bounds of time and memory.

Hypothesis builds JPEG, PNG, GIF and WebP files from real encoders' output with hostile structure
spliced in (fill and junk bytes, many or large metadata segments, comment blocks, compressed text and
profile chunks, stray bytes, extra scans, animation frames), up to a few MB each. For every file
``inspect_image`` accepts, the CPU time of the open and decode is under :data:`CPU_BOUND_S` (files
that passed the old checks took 2 to 12 s) and the peak of the Python allocations (tracemalloc) is
under what the walk says Pillow holds (``DecodeWork.held_bytes``) plus :data:`SLACK`. Pixel buffers
are C allocations, bounded by ``decode_memory`` (test_decode_memory.py measures them in a child).
CPU time, not wall time: other processes on the machine do not count. Examples are derandomized, so
every run checks the same files.
"""

from __future__ import annotations

import io
import time
import tracemalloc
import zlib

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from PIL import Image

from dyimages_common.images.checks import ImageRejected, inspect_image
from dyimages_common.images.decode_work import check_decode_work
from testkit.images import encode, make_image

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 50_000_000}
CPU_BOUND_S = 1.0
SLACK = 2 * 2**20
MAX_FILE = 3 * 2**20
# Repeat counts from one to past every limit (Hypothesis alone favours small integers).
COUNTS = st.sampled_from([1, 2, 17, 300, 1025, 4097, 70_000, 1_000_000])
PROPERTY = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failing file is reported as generated
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _warm_up() -> None:
    """First opens import plugins and fill Pillow's caches (megabytes, once per process): not per file."""
    for fmt in ("JPEG", "PNG", "GIF", "WEBP"):
        image = make_image(0, (16, 16))
        inspect_image(encode(image.convert("P") if fmt == "GIF" else image, fmt), **LIMITS)


_warm_up()


def assert_bounded(data: bytes) -> None:
    """Open and decode ``data`` as the downloader does; if accepted, within the bounds."""
    tracemalloc.start()
    started = time.process_time()
    try:
        inspect_image(data, **LIMITS)
    except ImageRejected:
        return
    finally:
        cpu = time.process_time() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    held = check_decode_work(data).held_bytes
    assert cpu <= CPU_BOUND_S, f"accepted, and took {cpu:.2f} s of CPU ({len(data)} bytes)"
    assert peak <= held + SLACK, f"accepted, and held {peak / 2**20:.1f} MiB for {held / 2**20:.1f} MiB"


def _repeat(piece: bytes, count: int) -> bytes:
    return piece * max(1, min(count, MAX_FILE // max(1, len(piece))))


def _segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


# -- JPEG --------------------------------------------------------------------------------------------

_JPEG_PREFIXES = [b"", b"Exif\0\0MM\0*\0\0\0\x08\0\x01\x01\x12\0\x03\0\0\0\x01\0\x06\0\0", b"Photoshop 3.0\0", b"MPF\0"]


@st.composite
def jpeg_pieces(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["fill", "junk", "app", "com", "dqt", "sof", "eoi"]))
    count = draw(COUNTS)
    if kind == "fill":
        return b"\xff" * min(count, MAX_FILE)
    if kind == "junk":
        return b"\x00" * min(count, MAX_FILE)
    if kind == "eoi":
        return b"\xff\xd9"
    size = draw(st.integers(0, 65533))
    if kind == "app":
        prefix = draw(st.sampled_from(_JPEG_PREFIXES))
        photoshop = b"8BIM\0\0\0\0\0\0\0\0" if prefix.startswith(b"Photoshop") else b"\0"
        payload = (prefix + photoshop * (size // len(photoshop)))[:65533]
        return _repeat(_segment(draw(st.sampled_from([0xE1, 0xE2, 0xED, 0xE5])), payload), count)
    if kind == "com":
        return _repeat(_segment(0xFE, b"c" * size), count)
    if kind == "dqt":
        return _repeat(_segment(0xDB, (b"\0" + bytes(range(64))) * (size // 65)), count)
    return _repeat(_segment(0xC0, b"\x08\x00\x30\x00\x40\x03" + b"\x11\x01" * (size // 2)), count)


@given(
    progressive=st.booleans(),
    piece=jpeg_pieces(),
    extra_scans=st.sampled_from([0, 5, 22, 40, 300]),
)
@PROPERTY
def test_accepted_jpegs_open_within_the_bounds(progressive: bool, piece: bytes, extra_scans: int) -> None:
    data = encode(make_image(1, (256, 192)), "JPEG", quality=90, progressive=progressive)
    if progressive and extra_scans:
        last = data[data.rfind(b"\xff\xda") : -2]
        data = data[:-2] + last * extra_scans + b"\xff\xd9"
    assert_bounded(data[:2] + piece + data[2:])


# -- PNG ---------------------------------------------------------------------------------------------


def _chunk(kind: bytes, payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + kind + payload + zlib.crc32(kind + payload).to_bytes(4, "big")


_INFLATES = zlib.compress(b"\0" * (2**20 - 1), 9)  # 1 KB that inflates to just under Pillow's 1 MiB cap


@st.composite
def png_chunks(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["tEXt", "zTXt", "iTXt", "iCCP", "eXIf", "unknown"]))
    count = draw(COUNTS)
    size = draw(st.integers(0, 70_000))
    payload = {
        "tEXt": b"k\0" + b"v" * size,
        "zTXt": b"k\0\0" + _INFLATES,
        "iTXt": b"k\0\x01\0\0\0" + _INFLATES,
        "iCCP": b"p\0\0" + _INFLATES,
        "eXIf": b"MM\0*\0\0\0\x08\0\0" + b"\0" * size,
        "unknown": b"u" * size,
    }[kind]
    return _repeat(_chunk(kind.encode() if kind != "unknown" else b"prVt", payload), count)


@given(before=st.lists(png_chunks(), max_size=1), after=st.lists(png_chunks(), max_size=1))
@PROPERTY
def test_accepted_pngs_open_within_the_bounds(before: list[bytes], after: list[bytes]) -> None:
    data = encode(make_image(2, (128, 96)), "PNG")
    idat, iend = data.index(b"IDAT") - 4, data.index(b"IEND") - 4
    assert_bounded(data[:idat] + b"".join(before) + data[idat:iend] + b"".join(after) + data[iend:])


# -- GIF ---------------------------------------------------------------------------------------------


@st.composite
def gif_blocks(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["stray", "comment", "application", "control", "unknown"]))
    count = draw(COUNTS)
    size = draw(st.integers(0, 255))
    sub_block = bytes([size]) + b"x" * size if size else b""
    if kind == "stray":
        return bytes([draw(st.sampled_from([0x00, 0x01, 0x20, 0xFF]))]) * min(count, MAX_FILE)
    label = {"comment": b"\xfe", "application": b"\xff", "control": b"\xf9", "unknown": b"\x01"}[kind]
    blocks = draw(COUNTS)
    return _repeat(b"\x21" + label + _repeat(sub_block, blocks) + b"\0", count)


@given(stray=st.sampled_from([b"", b"\x00"]), block=gif_blocks(), frames=st.integers(1, 30))
@PROPERTY
def test_accepted_gifs_open_within_the_bounds(stray: bytes, block: bytes, frames: int) -> None:
    images = [make_image(3 + index, (96, 64)).convert("P") for index in range(frames)]
    data = encode(images[0], "GIF", save_all=True, append_images=images[1:])
    start = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    assert_bounded(data[:start] + stray + block + data[start:])  # a stray byte first, as Pillow reads past it


# -- WebP --------------------------------------------------------------------------------------------


@given(
    size=st.tuples(st.integers(1, 600), st.integers(1, 600)),
    lossless=st.booleans(),
    frames=st.integers(1, 6),
    exif=st.integers(0, 60_000),
    icc=st.integers(0, 200_000),
)
@PROPERTY
def test_accepted_webps_open_within_the_bounds(
    size: tuple[int, int], lossless: bool, frames: int, exif: int, icc: int
) -> None:
    images = [make_image(10 + index, size) for index in range(frames)]
    options: dict[str, object] = {"lossless": lossless, "quality": 50, "method": 0}
    if exif:
        options["exif"] = b"Exif\0\0MM\0*\0\0\0\x08\0\0" + b"\0" * exif
    if icc:
        options["icc_profile"] = b"\0" * icc
    if frames > 1:
        options.update(save_all=True, append_images=images[1:])
    assert_bounded(encode(images[0], "WEBP", **options))


def test_the_property_catches_an_unbounded_open() -> None:
    """Negative control: the same measure fails for a file the old checks accepted, opened without them."""
    data = encode(make_image(1, (64, 48)), "JPEG")
    hostile = data[:2] + b"\xff" * 1_000_000 + data[2:]
    started = time.process_time()
    Image.open(io.BytesIO(hostile)).load()
    assert time.process_time() - started > 0.1  # a million single-byte steps in Python; a real photo: < 5 ms
