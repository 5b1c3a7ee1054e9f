"""Bounding the work a decode may take, counted from the file's structure before decoding.

The pixel cap bounds memory, not time: a file can be small and still slow to decode, because
the decoder does work per scan, chunk or block rather than per byte. Each check here walks only
the container's markers (never the compressed data) and stops as soon as a count is over its
limit, so the walk itself is bounded too. A file over a limit is refused as ``too_complex``.

* JPEG: every scan of a progressive JPEG is a pass over every block of the image, however few
  bytes it takes, so hundreds of tiny scans make a 300 KB file take minutes. libjpeg's own
  progressive script writes 10 scans (6 for grey), mozjpeg about a dozen; at most
  :data:`MAX_JPEG_SCANS`, and at most :data:`MAX_JPEG_MARKERS` markers of any kind (a normal
  file has a few dozen; the walk is in Python, so a million empty comments must not be walked).
* PNG: Pillow reads every chunk (before and after the pixel data) in Python, about 10 µs each,
  so a million empty chunks take ten seconds. Encoders write pixel data in chunks of 8 KiB or
  more; at most :data:`PNG_FREE_CHUNKS` chunks plus one per :data:`PNG_BYTES_PER_CHUNK` bytes.
* GIF: only the first frame is decoded (and only it is ever used), but Pillow walks the
  extension blocks before it one data sub-block at a time in Python; a comment of a million
  one-byte sub-blocks takes seconds. At most :data:`MAX_GIF_BLOCKS_BEFORE_IMAGE` of them.
  Later frames are never read, so their number costs nothing.
* WebP is decoded by libwebp in one call whose work is bounded by the pixel count.
"""

from __future__ import annotations

import re

MAX_JPEG_SCANS = 32
MAX_JPEG_MARKERS = 1024
PNG_FREE_CHUNKS = 1024
PNG_BYTES_PER_CHUNK = 2048
MAX_GIF_BLOCKS_BEFORE_IMAGE = 4096

# A JPEG marker: 0xFF then a code that is not stuffing (00), a restart (D0-D7) or fill (FF).
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_JPEG_STANDALONE = frozenset({0x01, 0xD8})  # TEM, SOI: no length field
_JPEG_SOS, _JPEG_EOI = 0xDA, 0xD9
_PNG_SIGNATURE_LENGTH = 8


class TooComplex(ValueError):
    """The file's structure asks for more decoding work than any normal image needs."""


def check_decode_work(data: bytes) -> None:
    """Raise TooComplex when ``data`` is over a limit for its format.

    Runs before Pillow opens the file (opening already walks a PNG's chunks up to the pixel data
    and a GIF's blocks up to the first frame), so the format is told from the signature here.
    """
    if data.startswith(b"\xff\xd8\xff"):
        _check_jpeg(data)
    elif data.startswith(b"\x89PNG\r\n\x1a\n"):
        _check_png(data)
    elif data.startswith((b"GIF87a", b"GIF89a")):
        _check_gif(data)


def _check_jpeg(data: bytes) -> None:
    scans = markers = 0
    position = 2  # after SOI
    while (marker := _JPEG_MARKER.search(data, position)) is not None:
        markers += 1
        if markers > MAX_JPEG_MARKERS:
            raise TooComplex(f"more than {MAX_JPEG_MARKERS} JPEG markers")
        code = data[marker.start() + 1]
        if code == _JPEG_EOI:
            return  # the decoder stops here; anything after is ignored
        if code in _JPEG_STANDALONE:
            position = marker.end()
            continue
        if code == _JPEG_SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise TooComplex(f"more than {MAX_JPEG_SCANS} JPEG scans (each one a pass over the whole image)")
        length = int.from_bytes(data[marker.end() : marker.end() + 2], "big")
        position = marker.end() + max(length, 2)  # a scan's entropy-coded data follows its header


def _check_png(data: bytes) -> None:
    allowed = PNG_FREE_CHUNKS + len(data) // PNG_BYTES_PER_CHUNK
    chunks = 0
    position = _PNG_SIGNATURE_LENGTH
    while position + 8 <= len(data):
        chunks += 1
        if chunks > allowed:
            raise TooComplex(f"more than {allowed} PNG chunks for {len(data)} bytes")
        length = int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] == b"IEND":
            return
        position += 12 + length  # length, type, data, CRC


def _check_gif(data: bytes) -> None:
    flags = data[10] if len(data) > 10 else 0
    position = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # header, screen, global colours
    blocks = 0
    while position < len(data) and data[position] == 0x21:  # an extension before the first image
        position += 2  # introducer, label
        while position < len(data):
            size = data[position]
            position += 1 + size
            blocks += 1
            if blocks > MAX_GIF_BLOCKS_BEFORE_IMAGE:
                raise TooComplex(f"more than {MAX_GIF_BLOCKS_BEFORE_IMAGE} GIF extension blocks before the image")
            if size == 0:
                break
