"""Photos carrying real EXIF blocks, written by Pillow the way cameras lay them out: Make, Model and
Orientation in IFD0, DateTimeOriginal and OffsetTimeOriginal in the Exif IFD (tag 0x8769)."""

from __future__ import annotations

import io

from PIL import Image

from testkit.images import make_image

EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 0x9003
OFFSET_TIME_ORIGINAL = 0x9011
MAKE = 0x010F
MODEL = 0x0110
ORIENTATION = 0x0112


def exif_block(
    *,
    taken: object = None,
    offset: object = None,
    make: object = None,
    model: object = None,
    orientation: object = None,
) -> Image.Exif:
    """An EXIF block with the given values as they are (strings, or wrong types on purpose)."""
    exif = Image.Exif()
    for tag, value in ((MAKE, make), (MODEL, model), (ORIENTATION, orientation)):
        if value is not None:
            exif[tag] = value
    details = exif.get_ifd(EXIF_IFD)
    for tag, value in ((DATE_TIME_ORIGINAL, taken), (OFFSET_TIME_ORIGINAL, offset)):
        if value is not None:
            details[tag] = value
    return exif


def photo(seed: int, fmt: str = "JPEG", *, exif: Image.Exif | bytes | None = None, **values: object) -> bytes:
    """A distinct photo (see testkit.images) in ``fmt`` with ``exif`` (a block or raw bytes, written as
    given) or one made from ``values`` (:func:`exif_block`)."""
    block = exif if exif is not None else exif_block(**values)
    if isinstance(block, Image.Exif):  # as bytes: Pillow's PNG writer skips a block whose IFD0 looks empty
        block = block.tobytes()
    buffer = io.BytesIO()
    make_image(seed).save(buffer, format=fmt, exif=block)
    return buffer.getvalue()
