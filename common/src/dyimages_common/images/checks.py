"""Checking untrusted image bytes: real format, size, pixel and decode-work limits, complete data.

The downloader checks every download with :func:`inspect_image`; the embedding service opens
uploaded query images with :func:`open_image`. Both refuse with :class:`ImageRejected`, whose
``reason`` is a :class:`~dyimages_common.reasons.Reason` and whose message a person can read.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from dyimages_common.images.decode_work import TooComplex, check_decode_work
from dyimages_common.images.exif import NO_EXIF, ExifFacts, read_exif
from dyimages_common.images.storage import FORMATS
from dyimages_common.reasons import Reason

# Our own pixel cap is checked before decoding; Pillow's is disabled so it never decides first.
Image.MAX_IMAGE_PIXELS = None
DECODE_OVERHEAD = 2 * 1024 * 1024  # see decode_memory


class ImageRejected(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason.with_detail(detail))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name: JPEG, PNG, WEBP, GIF
    extension: str
    content_type: str
    width: int
    height: int
    exif: ExifFacts = NO_EXIF  # the photo's own date, camera and orientation (dyimages_common.images.exif)


def _open_checked(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    if len(data) > max_bytes:
        raise ImageRejected(Reason.TOO_LARGE, f"{len(data)} bytes is over the limit of {max_bytes}")
    if not data:
        raise ImageRejected(Reason.NOT_AN_IMAGE, "empty body")
    try:
        check_decode_work(data)  # before Image.open, which already walks PNG chunks and GIF blocks
    except TooComplex as exc:
        raise ImageRejected(Reason.TOO_COMPLEX, str(exc)) from None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(Reason.NOT_AN_IMAGE, f"cannot identify image data ({exc.__class__.__name__})") from None
    if image.format not in FORMATS:
        raise ImageRejected(Reason.UNSUPPORTED_FORMAT, f"format {image.format} is not one of {', '.join(FORMATS)}")
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageRejected(Reason.NOT_AN_IMAGE, f"invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(Reason.TOO_MANY_PIXELS, f"{width}x{height} is over the limit of {max_pixels} pixels")
    return image


def _decode_fully(image: Image.Image) -> None:
    """Decode all the image data so truncated or corrupt data is refused, not stored.

    For JPEG, draft mode decodes at 1/8 scale (or the nearest scale libjpeg offers): it still reads
    and entropy-decodes the whole stream, every scan (so truncation and corrupt data are caught),
    but skips most of the inverse DCT and colour work of a full-size decode. PNG and WebP decode at
    full size; GIF decodes its first frame, the one every service uses.
    """
    try:
        if image.format == "JPEG":
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise ImageRejected(Reason.CORRUPT_IMAGE, f"image data is truncated or corrupt ({exc})") from None


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int) -> ImageInfo:
    """Identify and decode ``data`` (JPEG at reduced scale, see ``_decode_fully``) within the byte,
    pixel and decode-work limits; return its real format, size and EXIF facts or raise ImageRejected.

    The EXIF block is read from the same opened image after the decode (a PNG's eXIf chunk may follow
    its pixel data), so nothing is decoded twice; broken EXIF never refuses an image (it reads as none).
    """
    image = _open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    width, height = image.size  # before the draft decode, which shrinks a JPEG's size
    _decode_fully(image)
    return ImageInfo(image.format, *FORMATS[image.format], width, height, read_exif(image))  # type: ignore[index]


def decode_memory(data: bytes, *, max_bytes: int, max_pixels: int) -> int:
    """An upper estimate of the bytes :func:`inspect_image` allocates to decode ``data`` (pixel and
    coefficient buffers, not the bytes themselves), read from the header after the same checks it
    makes before decoding (so it raises ImageRejected as it would). Lets a caller bound the memory
    of decodes running at once, which the pixel cap alone does not (it bounds one decode).

    Pillow keeps 1 byte per pixel for grey and palette images and 4 for the others. A JPEG decodes
    at 1/8 scale, but a progressive one first holds every DCT coefficient of the full-size image
    (2 bytes per sample of each component, at its sampling factors). Pillow decodes WebP through
    libwebp's animation decoder, which keeps its own RGBA canvases (measured: about four times the
    image's size in all; five are counted). Each decode also gets DECODE_OVERHEAD for the decoders' working
    buffers (zlib's window, libjpeg's row buffers, Pillow's line buffer).
    """
    image = _open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    pixels = image.width * image.height
    per_pixel = 1 if image.mode in ("1", "L", "P") else 4
    if image.format == "JPEG":
        scaled = pixels * per_pixel // 64 + DECODE_OVERHEAD
        if not image.info.get("progressive"):
            return scaled
        layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * 3
        h_max = max(layer[1] for layer in layers)
        v_max = max(layer[2] for layer in layers)
        samples = sum(pixels * layer[1] * layer[2] // (h_max * v_max) for layer in layers)
        return 2 * samples + scaled
    return pixels * per_pixel * (5 if image.format == "WEBP" else 1) + DECODE_OVERHEAD


def open_image(data: bytes, *, max_bytes: int, max_pixels: int) -> Image.Image:
    """Open untrusted bytes as an RGB image within the limits, or raise ImageRejected."""
    image = _open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        return image.convert("RGB")
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageRejected(Reason.CORRUPT_IMAGE, f"image data is truncated or corrupt ({exc})") from None
