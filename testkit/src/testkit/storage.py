"""Putting image bytes into an images directory exactly as the downloader stores them."""

from __future__ import annotations

from pathlib import Path

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic


def store(images_dir: Path, data: bytes, extension: str = "jpg") -> str:
    """Write ``data`` content-addressed under ``images_dir``; returns its relative stored path."""
    path = stored_path(sha256_hex(data), extension)
    write_atomic(images_dir, path, data)
    return path
