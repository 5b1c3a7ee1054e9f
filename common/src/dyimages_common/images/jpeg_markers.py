"""The JPEG walk: what Pillow's JPEG reader does in Python before libjpeg takes over, counted and capped.

Pillow opens a JPEG by reading it in Python up to the first scan (SOS): one byte at a time between
segments (fill and junk bytes), each segment through a handler that keeps or parses it. APPn and COM
segments are kept whole; SOF is parsed three bytes at a time and DQT one table at a time (each table
a copy of the rest of the segment); Exif APP1 segments are concatenated (each one copies all before
it) and parsed as one TIFF block; a Photoshop APP13 segment is parsed twelve bytes at a time. From
the first scan on, libjpeg reads in C, and only the number of scans and markers matters (each scan
is a pass over every block of the image). The limits below are far above what cameras and encoders
write and far below what makes an open slow.
"""

from __future__ import annotations

import re

from dyimages_common.images.walk_limits import DecodeWork, TooComplex

MAX_JPEG_SCANS = 32  # libjpeg's progressive script writes 10 (6 for grey), mozjpeg about a dozen
MAX_JPEG_MARKERS = 1024  # a normal file has a few dozen
MAX_JPEG_FILL_BYTES = 64 * 1024  # bytes between segments before the first scan, walked one by one
MAX_JPEG_TABLE_BYTES = 8 * 1024  # SOF and DQT segments before the first scan (a photo's: under 600)
MAX_JPEG_PARSED_APP_SEGMENTS = 8  # Exif APP1 and Photoshop APP13 segments (a photo's: one of each)
PARSED_METADATA_FACTOR = 48  # Python objects a parsed TIFF or Photoshop block becomes, per byte

# A JPEG marker: 0xFF then a code that is not stuffing (00), a restart (D0-D7) or fill (FF).
_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_SOS, _EOI, _COM, _DQT = 0xDA, 0xD9, 0xFE, 0xDB
_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xDE})
_APP = range(0xE0, 0xF0)
# Markers Pillow reads without a length before the first scan (its table has no handler for them).
_NO_LENGTH_BEFORE_SCAN = frozenset({0x01, 0xC8, *range(0xD8, 0xDA), *range(0xF0, 0xFE)})
_NO_LENGTH_AFTER_SCAN = frozenset({0x01, 0xD8})  # TEM, SOI: libjpeg reads a length for the others


def walk_jpeg(data: bytes) -> DecodeWork:
    """Count a JPEG's markers, scans, fill and parsed metadata, and see whether the scans reach EOI;
    raise TooComplex over a limit."""
    scans = markers = fill = tables = parsed_apps = held = parsed = 0
    ends = False
    position = 2  # after SOI
    while (marker := _MARKER.search(data, position)) is not None:
        markers += 1
        if markers > MAX_JPEG_MARKERS:
            raise TooComplex(f"more than {MAX_JPEG_MARKERS} JPEG markers")
        code = data[marker.start() + 1]
        if scans == 0:
            fill += marker.start() - position
            if fill > MAX_JPEG_FILL_BYTES:
                raise TooComplex(f"more than {MAX_JPEG_FILL_BYTES} fill bytes between JPEG segments")
        elif code == _EOI:
            ends = True
            break  # libjpeg stops here; anything after is ignored (Pillow reads on past an early EOI)
        if code in (_NO_LENGTH_BEFORE_SCAN if scans == 0 else _NO_LENGTH_AFTER_SCAN):
            position = marker.end()
            continue
        length = max(int.from_bytes(data[marker.end() : marker.end() + 2], "big"), 2)
        segment = data[marker.end() + 2 : marker.end() + length]
        position = marker.end() + length  # a scan's entropy-coded data follows its header
        if code == _SOS:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                raise TooComplex(f"more than {MAX_JPEG_SCANS} JPEG scans (each one a pass over the whole image)")
        elif scans > 0:
            continue
        elif code in _SOF or code == _DQT:
            tables += len(segment)
            if tables > MAX_JPEG_TABLE_BYTES:
                raise TooComplex(f"more than {MAX_JPEG_TABLE_BYTES} bytes of JPEG frame and quantization tables")
        elif code in _APP or code == _COM:
            held += len(segment)
            if _is_parsed(code, segment):
                parsed_apps += 1
                parsed += len(segment)
                if parsed_apps > MAX_JPEG_PARSED_APP_SEGMENTS:
                    raise TooComplex(f"more than {MAX_JPEG_PARSED_APP_SEGMENTS} Exif or Photoshop JPEG segments")
    # Kept segments, the joined Exif and ICC copies, and what the parsed blocks become.
    return DecodeWork(held_bytes=2 * held + PARSED_METADATA_FACTOR * parsed + 64 * markers, ends=ends)


def _is_parsed(code: int, segment: bytes) -> bool:
    """Segments Pillow parses at open: Exif (APP1), MPF (APP2), Photoshop resources (APP13)."""
    return (
        (code == 0xE1 and segment.startswith(b"Exif\0\0"))
        or (code == 0xE2 and segment.startswith(b"MPF\0"))
        or (code == 0xED and segment.startswith(b"Photoshop 3.0\0"))
    )
