"""The PNG walk: Pillow reads every chunk (before and after the pixel data) in Python; counted and capped.

Each chunk costs about 10 µs of Python, so a million empty chunks take ten seconds: encoders write
pixel data in chunks of 8 KiB or more, so at most :data:`PNG_FREE_CHUNKS` chunks plus one per
:data:`PNG_BYTES_PER_CHUNK` bytes. A compressed chunk (zTXt, iTXt, iCCP) is inflated whole, up to
1 MiB each (Pillow's ``MAX_TEXT_CHUNK``), and Pillow counts only text against its own 64 MiB
budget, not colour profiles: at most :data:`MAX_PNG_COMPRESSED_CHUNKS` of them (a photo has one
profile and a few texts). Text, EXIF and private chunks are kept; their bytes count as held.
"""

from __future__ import annotations

from PIL import PngImagePlugin

from dyimages_common.images.walk_limits import DecodeWork, TooComplex

PNG_FREE_CHUNKS = 1024
PNG_BYTES_PER_CHUNK = 2048
MAX_PNG_COMPRESSED_CHUNKS = 16
_SIGNATURE_LENGTH = 8
_COMPRESSED = frozenset({b"zTXt", b"iTXt", b"iCCP"})
_KEPT = frozenset({b"tEXt", b"eXIf"})
_CHUNK_OBJECT_BYTES = 256  # per chunk: its bytes and the handler's objects


def walk_png(data: bytes) -> DecodeWork:
    """Count a PNG's chunks and compressed chunks; raise TooComplex over a limit."""
    allowed = PNG_FREE_CHUNKS + len(data) // PNG_BYTES_PER_CHUNK
    chunks = compressed = held = largest = 0
    position = _SIGNATURE_LENGTH
    while position + 8 <= len(data):
        chunks += 1
        if chunks > allowed:
            raise TooComplex(f"more than {allowed} PNG chunks for {len(data)} bytes")
        length = int.from_bytes(data[position : position + 4], "big")
        kind = data[position + 4 : position + 8]
        if kind == b"IEND":
            break
        largest = max(largest, min(length, len(data) - position))  # Pillow reads a chunk whole (transient)
        if kind in _COMPRESSED:
            compressed += 1
            if compressed > MAX_PNG_COMPRESSED_CHUNKS:
                raise TooComplex(f"more than {MAX_PNG_COMPRESSED_CHUNKS} compressed PNG chunks (text, profiles)")
        elif kind in _KEPT or kind[1:2].islower():  # private chunks are kept too (``private_chunks``)
            held += 2 * min(length, len(data) - position)  # the chunk and its decoded text or copy
        position += 12 + length  # length, type, data, CRC
    inflated = min(compressed * PngImagePlugin.MAX_TEXT_CHUNK, PngImagePlugin.MAX_TEXT_MEMORY)
    return DecodeWork(held_bytes=held + 2 * inflated + largest + _CHUNK_OBJECT_BYTES * chunks)
