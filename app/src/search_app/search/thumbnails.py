"""Thumbnails made on the server from the stored file, so the browser gets small JPEGs, not originals.

A payload path is untrusted input: it is only turned into a file by
:func:`dyimages_common.images.storage.resolve_stored_path`, which refuses anything outside IMAGES_DIR, and a
photo of the library by :func:`dyimages_common.library.paths.read_library_file`, which refuses anything
outside PHOTOS_DIR (the app's read-only mount of the same folder the scanner reads).
"""

from __future__ import annotations

import io
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from dyimages_common.images.heif import register_heif
from dyimages_common.images.storage import UnsafePathError, resolve_stored_path
from dyimages_common.library.paths import LibraryFileError, read_library_file
from dyimages_common.store.points import ImagePoint

register_heif()  # iPhone photos (HEIC); Pillow reads AVIF itself

# Pillow's and its plugins' errors for a file it cannot read (RuntimeError: libheif's refusals).
_UNREADABLE = (UnidentifiedImageError, OSError, SyntaxError, ValueError, RuntimeError, Image.DecompressionBombError)

Source = tuple[str, str]  # ("stored", path under IMAGES_DIR) or ("library", path under PHOTOS_DIR)


def source_of(point: ImagePoint) -> Source:
    """Where a point's image is shown from: its stored file, else the first library file holding it."""
    if point.path or not point.library_paths:
        return ("stored", point.path)
    return ("library", point.library_paths[0])


class ThumbnailError(Exception):
    """The stored image cannot be shown (missing, refused path, over the limits, unreadable)."""


def _on_white(image: Image.Image) -> Image.Image:
    """RGB for JPEG; transparent parts (PNG, GIF, WebP) become white rather than black."""
    if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size, "white")
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def thumbnail(
    images_dir: Path,
    path: str,
    size: int,
    *,
    max_bytes: int,
    max_pixels: int,
    quality: int = 85,
) -> bytes:
    """A JPEG of the stored image at ``path`` whose longest side is at most ``size`` pixels."""
    try:
        file = resolve_stored_path(images_dir, path)
    except UnsafePathError as exc:
        raise ThumbnailError(str(exc)) from None
    try:
        if file.stat().st_size > max_bytes:
            raise ThumbnailError(f"{path} is larger than {max_bytes} bytes")
    except FileNotFoundError:
        raise ThumbnailError(f"{path} is missing from the images directory") from None
    return _small_jpeg(file, path, size, max_pixels=max_pixels, quality=quality)


def library_thumbnail(
    photos_dir: Path | None, path: str, size: int, *, max_bytes: int, max_pixels: int, quality: int = 85
) -> bytes:
    """A JPEG of the library photo at ``path`` (relative to PHOTOS_DIR), as :func:`thumbnail`."""
    try:
        data = read_library_file(photos_dir, path, max_bytes)
    except LibraryFileError as exc:
        raise ThumbnailError(str(exc)) from None
    return _small_jpeg(io.BytesIO(data), path, size, max_pixels=max_pixels, quality=quality)


def _small_jpeg(file: Path | io.BytesIO, path: str, size: int, *, max_pixels: int, quality: int) -> bytes:
    try:
        with Image.open(file) as image:
            if image.width * image.height > max_pixels:
                raise ThumbnailError(f"{path} has more than {max_pixels} pixels")
            # JPEG: decode at a reduced DCT scale close to the target size (much faster than full size).
            image.draft("RGB", (size, size))
            small = _on_white(ImageOps.exif_transpose(image))
    except FileNotFoundError:
        raise ThumbnailError(f"{path} is missing from the images directory") from None
    except _UNREADABLE as exc:
        raise ThumbnailError(f"{path} cannot be read: {exc}") from None
    small.thumbnail((size, size), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    small.save(buffer, format="JPEG", quality=quality, optimize=True)
    return buffer.getvalue()
