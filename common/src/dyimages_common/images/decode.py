"""Decoding an image for the model: upright, in RGB, and no larger than the model needs.

* Upright: phones store most photos as the sensor saw them and say in EXIF Orientation how to turn
  them; the model must see what a person sees, so the turn (or mirror) is applied before anything
  else. HEIF files are turned by libheif itself (their EXIF Orientation then reads 1).
* No larger than needed: a JPEG is decoded at the smallest DCT scale (1/8, 1/4, 1/2, 1) whose both
  sides are still at least :data:`REDUCING_GAP` times ``min_side``, the model's input side, so the
  resize that follows still shrinks by that much and its antialiasing filter, not the DCT scaling
  alone, shapes the pixels the model sees (Pillow's ``reducing_gap`` idea). The gap is the smallest
  that keeps the vectors within the rule of ``python -m bench decode_cosine`` (docs/architecture.md)
  and lets a 12 MP photo decode at 1/8 for a 224 px model: decoding the 8x8 blocks' averages only is
  what makes a large JPEG cheap, as the entropy decode that remains cannot be skipped.

The embedding service (both runtimes), the parity references and the benches all decode through
:func:`open_image`, so every vector is made from the same pixels.
"""

from __future__ import annotations

import math

from PIL import Image

from dyimages_common.images.checks import ImageRejected, format_of, open_checked
from dyimages_common.images.exif import read_orientation
from dyimages_common.reasons import Reason

REDUCING_GAP = 1.5  # the resize after a reduced decode still shrinks at least this many times

# EXIF Orientation -> the Pillow operation that turns the stored pixels upright (as ImageOps.exif_transpose).
TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def upright(image: Image.Image, orientation: int | None) -> Image.Image:
    """``image`` turned as EXIF ``orientation`` says (unchanged for 1, None or a value out of range)."""
    turn = TURNS.get(orientation or 1)
    return image if turn is None else image.transpose(turn)


def reduce_for(image: Image.Image, min_side: int) -> None:
    """Ask a JPEG's decoder for the smallest DCT scale whose both sides are at least
    ``REDUCING_GAP * min_side`` (Pillow's draft picks the largest of 1/8, 1/4, 1/2 that keeps them
    there); other formats decode whole."""
    target = math.ceil(REDUCING_GAP * min_side)
    if format_of(image) == "JPEG" and min(image.size) > target:
        image.draft("RGB", (target, target))


def open_image(data: bytes, *, max_bytes: int, max_pixels: int, min_side: int | None = None) -> Image.Image:
    """Untrusted bytes as an upright RGB image within the limits, or raise ImageRejected.

    With ``min_side`` (the model's input side), a JPEG is decoded at a reduced scale whose sides stay
    at least :data:`REDUCING_GAP` times that (see :func:`reduce_for`); without it, at full size.
    """
    image, _ = open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    if min_side is not None:
        reduce_for(image, min_side)
    try:
        image.load()  # first: a PNG's eXIf chunk may follow its pixel data
        return upright(image, read_orientation(image)).convert("RGB")
    except (OSError, SyntaxError, ValueError, RuntimeError, EOFError) as exc:
        raise ImageRejected(Reason.CORRUPT_IMAGE, f"image data is truncated or corrupt ({exc})") from None
