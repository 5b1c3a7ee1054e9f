"""HEIC/HEIF photos, the format iPhones save by default, read through pillow-heif's Pillow plugin.

pillow-heif decodes with libheif and libde265; libheif applies the file's own rotation and mirror
on decode and resets the EXIF Orientation it reports to 1, so orientation is never applied twice.
Thumbnails, depth maps and auxiliary images are not read (only the primary image is ever used).
AVIF needs nothing here: Pillow reads it itself (libavif), reporting its rotation as EXIF Orientation.
"""

from __future__ import annotations

from functools import cache

import pillow_heif


@cache
def register_heif() -> None:
    """Register the HEIF opener with Pillow, once per process (every module that opens images calls it)."""
    pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)
