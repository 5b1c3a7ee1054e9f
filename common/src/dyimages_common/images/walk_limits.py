"""What a structure walk reports and how it refuses (shared by the JPEG, PNG and GIF walks)."""

from __future__ import annotations

from dataclasses import dataclass


class TooComplex(ValueError):
    """The file's structure asks for more decoding work than any normal image needs."""


@dataclass(frozen=True)
class DecodeWork:
    """What opening and decoding the file costs beyond its pixel buffers.

    ``held_bytes`` bounds the memory of the Python objects Pillow makes from the file's metadata
    (kept segments, comments, text chunks, parsed EXIF) while it is open; the caller adds the pixel
    and decoder buffers, which depend on the header (``checks.decode_memory``). ``ends`` says the
    walk reached the format's end marker (a JPEG's EOI): False means the file stops early, truncated.
    """

    held_bytes: int = 0
    ends: bool = True
