"""Turning request items into model inputs: images (stored path or uploaded bytes) and texts.

Each image is checked on its own: a path must name a stored image inside IMAGES_DIR (a library
path a photo inside PHOTOS_DIR, see :mod:`dyimages_common.library.paths`), the bytes
must be a real image within the size and pixel limits. It is decoded upright (EXIF Orientation) and,
for a JPEG, at the smallest DCT scale still 1.5 times the model's input side
(:func:`dyimages_common.images.decode.open_image`). A bad image becomes an
:class:`~dyimages_common.embeddings.wire.ItemFailure` (a :class:`~dyimages_common.reasons.Reason` and
a detail) for that item only; its neighbours in the request are embedded as usual. A request's items travel
through the serving loop as a :class:`Job` and come back as a :class:`Result`.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from PIL import Image

from dyimages_common.embeddings.wire import ImageRef, ItemFailure
from dyimages_common.images.checks import ImageRejected
from dyimages_common.images.decode import open_image
from dyimages_common.images.storage import UnsafePathError, resolve_stored_path
from dyimages_common.library.paths import LibraryFileError, read_library_file
from dyimages_common.reasons import Reason

Kind = Literal["text", "image"]


@dataclass
class Job:
    """One request's items, ready for the model: per item the backend's input, or the reason it has none."""

    kind: Kind
    inputs: list[Any]  # per item: pixels or token ids, or an ItemFailure


@dataclass
class Result:
    """One request's answer: per item a unit vector or None, and None or the reason."""

    vectors: list[np.ndarray | None]
    errors: list[ItemFailure | None]


class ItemError(ValueError):
    """One item cannot be embedded; its :attr:`failure` goes back in ``errors``."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason.with_detail(detail))
        self.failure = ItemFailure(reason=reason, detail=detail)


@dataclass(frozen=True)
class ImageLimits:
    """Where stored images are, the limits every image is checked against, and how large to decode it."""

    images_dir: Path
    max_bytes: int
    max_pixels: int
    photos_dir: Path | None = None  # the photo library (PHOTOS_DIR), read-only; None: no library here
    decode_side: int | None = None  # the model's input side: JPEGs decode at the smallest scale above it


def read_image_bytes(ref: ImageRef, limits: ImageLimits) -> bytes:
    if ref.data is not None:
        try:
            return base64.b64decode(ref.data, validate=True)
        except (binascii.Error, ValueError):
            raise ItemError(Reason.BAD_BASE64, "`data` is not valid base64") from None
    if ref.library_path is not None:
        try:
            return read_library_file(limits.photos_dir, ref.library_path, limits.max_bytes)
        except LibraryFileError as exc:
            raise ItemError(exc.reason, exc.detail) from None
    assert ref.path is not None
    try:
        file = resolve_stored_path(limits.images_dir, ref.path)
    except UnsafePathError as exc:
        raise ItemError(Reason.UNSAFE_PATH, str(exc)) from None
    try:
        size = file.stat().st_size
        if size > limits.max_bytes:
            raise ItemError(Reason.TOO_LARGE, f"{size} bytes is over the limit of {limits.max_bytes}")
        return file.read_bytes()
    except FileNotFoundError:
        raise ItemError(Reason.NOT_FOUND, f"no stored image at {ref.path!r}") from None
    except IsADirectoryError:
        raise ItemError(Reason.NOT_FOUND, f"{ref.path!r} is not a file") from None
    except OSError as exc:
        raise ItemError(Reason.UNREADABLE, f"{ref.path!r}: {exc.strerror or exc}") from None


def load_image(ref: ImageRef, limits: ImageLimits) -> Image.Image:
    data = read_image_bytes(ref, limits)
    try:
        return open_image(data, max_bytes=limits.max_bytes, max_pixels=limits.max_pixels, min_side=limits.decode_side)
    except ImageRejected as exc:
        raise ItemError(exc.reason, exc.detail) from None


def prepare_image(ref: ImageRef, limits: ImageLimits, preprocess: Callable[[Image.Image], Any]) -> Any:
    """The preprocessed pixel tensor of one image, or the :class:`ItemFailure` saying why it has none."""
    try:
        image = load_image(ref, limits)
    except ItemError as exc:
        return exc.failure
    try:
        return preprocess(image)
    except (OSError, ValueError) as exc:
        return ItemFailure(reason=Reason.CORRUPT_IMAGE, detail=f"cannot preprocess ({exc})")
