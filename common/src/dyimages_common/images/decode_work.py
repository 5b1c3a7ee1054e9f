"""Bounding the work a decode may take, counted from the file's structure before Pillow opens it.

The pixel cap bounds memory, not time: a file can be small and still slow to open or decode,
because Pillow does work per chunk, block, segment or stray byte in Python, and libjpeg does a
pass over the whole image per scan. Each walk here follows the reading of Pillow's plugin for its
format (never the compressed data), stops as soon as a count is over its limit, and so is bounded
itself. A file over a limit is refused as ``too_complex``; a file within them opens in at most a
few thousand Python steps, and what Pillow builds from its metadata is :attr:`DecodeWork.held_bytes`.

* JPEG: :mod:`dyimages_common.images.jpeg_markers` (scans, markers, fill bytes, tables, parsed metadata).
* PNG: :mod:`dyimages_common.images.png_chunks` (chunks per byte, compressed chunks).
* GIF: :mod:`dyimages_common.images.gif_blocks` (blocks and stray bytes before the first image, comments).
* WebP, HEIF and AVIF are parsed and decoded in C (libwebp, libheif, libavif) in one call whose work is
  bounded by the bytes and the pixel count; Pillow and its plugins hold a copy of the file's bytes.
  For HEIF and AVIF the top-level box sizes are read to tell a truncated file (:func:`boxes_fit`).
"""

from __future__ import annotations

from dyimages_common.images.gif_blocks import MAX_GIF_BLOCKS_BEFORE_IMAGE, MAX_GIF_COMMENT_BYTES, walk_gif
from dyimages_common.images.jpeg_markers import (
    MAX_JPEG_FILL_BYTES,
    MAX_JPEG_MARKERS,
    MAX_JPEG_PARSED_APP_SEGMENTS,
    MAX_JPEG_SCANS,
    MAX_JPEG_TABLE_BYTES,
    walk_jpeg,
)
from dyimages_common.images.png_chunks import (
    MAX_PNG_COMPRESSED_CHUNKS,
    PNG_BYTES_PER_CHUNK,
    PNG_FREE_CHUNKS,
    walk_png,
)
from dyimages_common.images.walk_limits import DecodeWork, TooComplex

__all__ = [
    "MAX_GIF_BLOCKS_BEFORE_IMAGE",
    "MAX_GIF_COMMENT_BYTES",
    "MAX_JPEG_FILL_BYTES",
    "MAX_JPEG_MARKERS",
    "MAX_JPEG_PARSED_APP_SEGMENTS",
    "MAX_JPEG_SCANS",
    "MAX_JPEG_TABLE_BYTES",
    "MAX_PNG_COMPRESSED_CHUNKS",
    "PNG_BYTES_PER_CHUNK",
    "PNG_FREE_CHUNKS",
    "DecodeWork",
    "TooComplex",
    "check_decode_work",
]


def check_decode_work(data: bytes) -> DecodeWork:
    """Walk ``data`` as its signature says; raise TooComplex when it is over a limit for its format.

    Runs before Pillow opens the file (opening already walks a JPEG's segments, a PNG's chunks up to
    the pixel data and a GIF's blocks up to the first frame), so the format is told from the signature.
    """
    if data.startswith(b"\xff\xd8\xff"):
        return walk_jpeg(data)
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return walk_png(data)
    if data.startswith((b"GIF87a", b"GIF89a")):
        return walk_gif(data)
    if data[4:8] == b"ftyp":  # HEIF, AVIF: ISO base media boxes
        return DecodeWork(held_bytes=2 * len(data), ends=boxes_fit(data))
    # WebP, HEIF, AVIF: their plugins read the whole file into one bytes object and pass it to C,
    # which may keep its own copy.
    return DecodeWork(held_bytes=2 * len(data))


def boxes_fit(data: bytes) -> bool:
    """Whether the top-level boxes of an ISO base media file (HEIF, AVIF) end within ``data``: a
    truncated copy's last box, the coded pixels (``mdat``), claims more bytes than are left. Reads
    one size per box (a photo has three or four), never the boxes' contents."""
    position = 0
    while position + 8 <= len(data):
        size = int.from_bytes(data[position : position + 4], "big")
        if size == 0:
            return True  # the last box runs to the end of the file
        if size == 1:  # a 64-bit size follows the type
            size = int.from_bytes(data[position + 8 : position + 16], "big")
        if size < 8:
            return False
        position += size
    return position <= len(data)  # a few stray bytes after the last box are ignored, as libheif does
