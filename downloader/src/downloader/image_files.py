"""Turning fetched bytes into a stored image: check, hash, and write (blocking; run in threads)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from dyimages_common.images.checks import ImageInfo, inspect_image
from dyimages_common.images.storage import sha256_hex, stored_path
from dyimages_common.messaging.messages import ImageDownloaded


@dataclass(frozen=True)
class CheckedImage:
    sha256: str
    path: str  # relative to IMAGES_DIR
    info: ImageInfo
    size: int


def check_image(
    data: bytes, *, max_bytes: int, max_pixels: int, decode: bool = True, sha256: str | None = None
) -> CheckedImage:
    """Check ``data`` (raises ImageRejected; ``decode=False``: a camera's format from its header alone,
    see ``inspect_image``) and name it by its content (``sha256`` when the caller hashed it already)."""
    info = inspect_image(data, max_bytes=max_bytes, max_pixels=max_pixels, decode=decode)
    sha256 = sha256 or sha256_hex(data)
    return CheckedImage(sha256, stored_path(sha256, info.extension), info, len(data))


def message_for(image: CheckedImage, url: str, downloaded_at: datetime) -> ImageDownloaded:
    """The message for the indexer, with the photo's own date, camera and orientation when its EXIF
    says them (None otherwise: the search then dates it by ``downloaded_at``)."""
    exif = image.info.exif
    return ImageDownloaded(
        sha256=image.sha256,
        path=image.path,
        url=url,
        content_type=image.info.content_type,
        width=image.info.width,
        height=image.info.height,
        bytes=image.size,
        downloaded_at=downloaded_at,
        taken_at=exif.taken_at,
        camera=exif.camera,
        orientation=exif.orientation,
    )
