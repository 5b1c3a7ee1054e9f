"""The stored-image layout: content-addressed files under IMAGES_DIR.

An image is stored once, named by the SHA-256 of its bytes plus the extension of its real format:
``ab/cd/abcd….jpg``. A URL never becomes a path, and a path from outside (a message, a request)
is only used after :func:`resolve_stored_path` has checked it names a file inside the directory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

# Pillow format name -> (extension, MIME type). The only formats we accept.
FORMATS: dict[str, tuple[str, str]] = {
    "JPEG": ("jpg", "image/jpeg"),
    "PNG": ("png", "image/png"),
    "WEBP": ("webp", "image/webp"),
    "GIF": ("gif", "image/gif"),
    "HEIF": ("heic", "image/heic"),  # HEVC-coded HEIF, as phones write it (dyimages_common.images.heif)
    "AVIF": ("avif", "image/avif"),
}
EXTENSIONS = frozenset(ext for ext, _ in FORMATS.values())
CONTENT_TYPES = frozenset(mime for _, mime in FORMATS.values())

_TEMP_PREFIX, _TEMP_SUFFIX = ".tmp-", ".part"  # write_atomic's temporary files
_STORED_PATH = re.compile(r"^([0-9a-f]{2})/([0-9a-f]{2})/([0-9a-f]{64})\.([a-z]+)$")


class UnsafePathError(ValueError):
    """A path that does not name a stored image inside the images directory."""


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stored_path(sha256: str, extension: str) -> str:
    """The relative path of an image: ``ab/cd/<sha256>.<ext>``."""
    path = f"{sha256[:2]}/{sha256[2:4]}/{sha256}.{extension}"
    check_stored_path(path)
    return path


def check_stored_path(path: str) -> str:
    """Raise UnsafePathError unless ``path`` has exactly the stored-image shape."""
    match = _STORED_PATH.match(path)
    if not match or match[3][:2] != match[1] or match[3][2:4] != match[2] or match[4] not in EXTENSIONS:
        raise UnsafePathError(f"not a stored image path: {path!r}")
    return path


def resolve_stored_path(images_dir: Path, path: str) -> Path:
    """The absolute file for a relative stored path, refusing anything outside ``images_dir``.

    The shape check already excludes ``..`` and absolute paths; the resolve check also catches
    a symlink inside the directory that points out of it.
    """
    check_stored_path(path)
    root = images_dir.resolve()
    full = (root / path).resolve()
    if not full.is_relative_to(root):
        raise UnsafePathError(f"path resolves outside the images directory: {path!r}")
    return full


def write_atomic(images_dir: Path, path: str, data: bytes) -> Path:
    """Write ``data`` at the stored ``path`` so no reader ever sees half a file, durably.

    Writes a temporary file in the same folder, fsyncs it, renames it into place, then fsyncs the
    folders: a rename lives in the directory, and until the directory is on disk a power cut can
    undo it (the file's own fsync does not cover its name). Only when this returns may a record
    say the image is stored. If the file already exists (same bytes, by construction) nothing is
    written, but it and its folders are still fsynced: an earlier writer may have been killed
    between its rename and its directory fsync.
    """
    target = resolve_stored_path(images_dir, path)
    if target.exists():
        fsync_path(target)
        _fsync_folders(images_dir, target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=_TEMP_PREFIX, suffix=_TEMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_folders(images_dir, target)
    return target


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (a directory is opened read-only, as POSIX allows)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_folders(images_dir: Path, target: Path) -> None:
    """fsync the file's folder and each folder above it up to ``images_dir``: ``ab/cd/`` and ``ab/``
    may have just been created, and their names live in the folder above."""
    root = images_dir.resolve()
    folder = target.parent
    while True:
        fsync_path(folder)
        if folder == root or not folder.is_relative_to(root):
            return
        folder = folder.parent


def remove_stale_temp_files(images_dir: Path, older_than_s: float = 600.0) -> int:
    """Delete write_atomic's temporary files left by a killed writer; return how many.

    Only files older than ``older_than_s`` go, so a write in progress elsewhere is left alone.
    They never look like stored images (wrong name), so this only reclaims space.
    """
    cutoff = time.time() - older_than_s
    removed = 0
    for path in images_dir.glob(f"[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/{_TEMP_PREFIX}*{_TEMP_SUFFIX}"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except FileNotFoundError:
            continue
    return removed
