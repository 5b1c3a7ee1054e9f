"""Checking untrusted image bytes: real format, size, pixel and decode-work limits, complete data.

The downloader checks every download with :func:`inspect_image`; the embedding service opens images
for the model with :func:`dyimages_common.images.decode.open_image`. Both refuse with
:class:`ImageRejected`, whose ``reason`` is a :class:`~dyimages_common.reasons.Reason` and whose
message a person can read. The format is told from the first bytes and only the plugins of the
accepted formats ever open a file (any other plugin's reader is untrusted work we never asked for).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError, WebPImagePlugin

from dyimages_common.images.decode_work import DecodeWork, TooComplex, check_decode_work
from dyimages_common.images.exif import NO_EXIF, ExifFacts, read_exif
from dyimages_common.images.heif import register_heif
from dyimages_common.images.storage import FORMATS
from dyimages_common.reasons import Reason

# Our own pixel cap is checked before decoding; Pillow's is disabled so it never decides first.
Image.MAX_IMAGE_PIXELS = None
DECODE_OVERHEAD = 2 * 1024 * 1024  # see decode_memory
ALIASES = {"MPO": "JPEG"}  # a JPEG with a multi-picture index (phones' depth and gain maps): its first picture
_PREFIX = 16  # bytes Pillow's plugins look at to accept a file
# Formats whose header, limits and EXIF are known at open, without decoding: the cameras' (inspect_image).
HEADER_CHECKED = frozenset({"JPEG", "HEIF", "AVIF"})
register_heif()


class ImageRejected(ValueError):
    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason.with_detail(detail))
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    format: str  # Pillow's name: JPEG, PNG, WEBP, GIF, HEIF, AVIF
    extension: str
    content_type: str
    width: int
    height: int
    exif: ExifFacts = NO_EXIF  # the photo's own date, camera and orientation (dyimages_common.images.exif)


def sniff_format(data: bytes) -> str | None:
    """The format whose Pillow plugin first accepts ``data``'s signature (as ``Image.open`` tries them), or None."""
    Image.init()
    prefix = data[:_PREFIX]
    for name in Image.ID:
        _, accept = Image.OPEN[name]
        if accept is not None and accept(prefix):
            return name
    return None


def _checked_work(data: bytes, *, max_bytes: int, max_pixels: int) -> DecodeWork:
    """The checks made from the bytes alone, before any plugin reads them."""
    if len(data) > max_bytes:
        raise ImageRejected(Reason.TOO_LARGE, f"{len(data)} bytes is over the limit of {max_bytes}")
    if not data:
        raise ImageRejected(Reason.NOT_AN_IMAGE, "empty body")
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRejected(Reason.NOT_AN_IMAGE, "cannot identify image data (no known signature)")
    if fmt not in FORMATS:
        raise ImageRejected(Reason.UNSUPPORTED_FORMAT, f"format {fmt} is not one of {', '.join(FORMATS)}")
    if fmt == "WEBP" and (size := WebPImagePlugin._get_size(data[:30])):  # the canvas is allocated at open
        _check_size(*size, max_pixels=max_pixels)
    try:
        return check_decode_work(data)
    except TooComplex as exc:
        raise ImageRejected(Reason.TOO_COMPLEX, str(exc)) from None


def _check_size(width: int, height: int, *, max_pixels: int) -> None:
    if width <= 0 or height <= 0:
        raise ImageRejected(Reason.NOT_AN_IMAGE, f"invalid size {width}x{height}")
    if width * height > max_pixels:
        raise ImageRejected(Reason.TOO_MANY_PIXELS, f"{width}x{height} is over the limit of {max_pixels} pixels")


def open_checked(data: bytes, *, max_bytes: int, max_pixels: int) -> tuple[Image.Image, DecodeWork]:
    """Open ``data`` (header only) within the byte, decode-work and pixel limits, or raise ImageRejected."""
    work = _checked_work(data, max_bytes=max_bytes, max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=list(FORMATS))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, RuntimeError) as exc:
        raise ImageRejected(Reason.NOT_AN_IMAGE, f"cannot identify image data ({exc.__class__.__name__})") from None
    _check_size(*image.size, max_pixels=max_pixels)
    return image, work


def format_of(image: Image.Image) -> str:
    """The accepted format an opened image counts as (an MPO is its first JPEG)."""
    return ALIASES.get(image.format or "", image.format or "")


def decode_fully(image: Image.Image) -> None:
    """Decode all the image data so truncated or corrupt data is refused, not stored.

    For JPEG, draft mode decodes at 1/8 scale (or the nearest scale libjpeg offers): it still reads
    and entropy-decodes the whole stream, every scan (so truncation and corrupt data are caught),
    but skips most of the inverse DCT and colour work of a full-size decode. PNG, WebP, HEIF and
    AVIF decode at full size; GIF decodes its first frame, the one every service uses.
    """
    try:
        if format_of(image) == "JPEG":
            image.draft("RGB", (max(1, image.width // 8), max(1, image.height // 8)))
        image.load()
    except (OSError, SyntaxError, ValueError, RuntimeError, EOFError, Image.DecompressionBombError) as exc:
        raise ImageRejected(Reason.CORRUPT_IMAGE, f"image data is truncated or corrupt ({exc})") from None


def inspect_image(data: bytes, *, max_bytes: int, max_pixels: int, decode: bool = True) -> ImageInfo:
    """Identify and decode ``data`` (JPEG at reduced scale, see ``decode_fully``) within the byte,
    pixel and decode-work limits; return its real format, size and EXIF facts or raise ImageRejected.

    With ``decode=False`` a camera's format (:data:`HEADER_CHECKED`) is checked from its header and
    structure alone, and must be whole (a JPEG reaches its end-of-image marker, a HEIF's or AVIF's
    boxes end within the file), so a truncated copy is refused: for
    a photo the embedding service decodes anyway, a second decode here would cost as much as the
    model, and the service refuses, with a reason, the rare file whose data is broken past its header.
    Other formats are decoded either way.

    The EXIF block is read from the same opened image after the decode (a PNG's eXIf chunk may follow
    its pixel data), so nothing is decoded twice; broken EXIF never refuses an image (it reads as none).
    """
    image, work = open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    width, height = image.size  # before the draft decode, which shrinks a JPEG's size
    fmt = format_of(image)
    if decode or fmt not in HEADER_CHECKED:
        decode_fully(image)
    elif not work.ends:
        raise ImageRejected(Reason.CORRUPT_IMAGE, "image data is truncated (the file stops before its last part ends)")
    return ImageInfo(fmt, *FORMATS[fmt], width, height, read_exif(image))


def header_suffices(data: bytes) -> bool:
    """Whether ``inspect_image(data, decode=False)`` leaves ``data`` undecoded (a camera's format)."""
    fmt = sniff_format(data) or ""
    return ALIASES.get(fmt, fmt) in HEADER_CHECKED


def open_memory(data: bytes, *, max_bytes: int, max_pixels: int) -> int:
    """An upper estimate of the bytes opening ``data`` allocates (before any decode), from the bytes
    alone: what Pillow builds from the metadata, and a WebP's canvases, which libwebp allocates when
    the file is opened. Lets a caller reserve memory before the first open (raises ImageRejected as
    :func:`open_checked` would for what the bytes alone show)."""
    work = _checked_work(data, max_bytes=max_bytes, max_pixels=max_pixels)
    canvas = 0
    if sniff_format(data) == "WEBP" and (size := WebPImagePlugin._get_size(data[:30])):
        canvas = 2 * 4 * size[0] * size[1]
    return work.held_bytes + canvas + DECODE_OVERHEAD


def decode_memory(data: bytes, *, max_bytes: int, max_pixels: int) -> int:
    """An upper estimate of the bytes :func:`inspect_image` allocates to open and decode ``data`` (pixel
    and coefficient buffers, and what Pillow builds from the metadata; not the bytes themselves), read
    from the header after the same checks it makes before decoding (so it raises ImageRejected as it
    would). Lets a caller bound the memory of decodes running at once, which the pixel cap alone does
    not (it bounds one decode).

    Pillow keeps 1 byte per pixel for grey and palette images and 4 for the others. A JPEG decodes
    at 1/8 scale, but a progressive one first holds every DCT coefficient of the full-size image
    (2 bytes per sample of each component, at its sampling factors). Pillow decodes WebP through
    libwebp's animation decoder, which keeps its own RGBA canvases (several times the image's size in
    all, bench/RESULTS.md; five are counted). libheif and libavif decode into planes of their own
    (YCbCr, up to 16 bits per sample) and convert them to RGB before Pillow copies the result (six
    are counted). Each decode also gets DECODE_OVERHEAD for the decoders' working buffers (zlib's
    window, libjpeg's row buffers, Pillow's line buffer).
    """
    image, work = open_checked(data, max_bytes=max_bytes, max_pixels=max_pixels)
    return _pixel_memory(image) + work.held_bytes + DECODE_OVERHEAD


def _pixel_memory(image: Image.Image) -> int:
    pixels = image.width * image.height
    per_pixel = 1 if image.mode in ("1", "L", "P") else 4
    fmt = format_of(image)
    if fmt == "JPEG":
        scaled = pixels * per_pixel // 64
        if not image.info.get("progressive"):
            return scaled
        layers = getattr(image, "layer", None) or [("", 1, 1, 0)] * 3
        h_max = max(1, *(layer[1] for layer in layers))
        v_max = max(1, *(layer[2] for layer in layers))
        samples = sum(pixels * layer[1] * layer[2] // (h_max * v_max) for layer in layers)
        return 2 * samples + scaled
    return pixels * per_pixel * {"WEBP": 5, "HEIF": 6, "AVIF": 6}.get(fmt, 1)
