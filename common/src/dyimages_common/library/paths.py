"""Paths into the photo library (PHOTOS_DIR): what a library path may look like, and reading one safely.

A library path is POSIX, relative to the folder (``2024/summer/IMG_0001.jpg``). It reaches the
indexer in a message, the embedding service in a request and the app in a point, so each reader
resolves it under the folder itself and refuses anything that leads out: an absolute path, ``..``,
an empty or ``.`` segment, a control character, or a symlink whose target is outside the folder.
The file itself is opened without following a last symlink and without blocking (a FIFO named
``x.jpg`` must not stall a reader), and must be a regular file no larger than the byte limit.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from dyimages_common.images.storage import UnsafePathError
from dyimages_common.reasons import Reason

MAX_PATH_CHARS = 4096
MAX_SEGMENT_BYTES = 255
# Names the scanner looks at (case-insensitive); anything else in the folder is not a photo.
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".heic", ".heif", ".avif"})


class LibraryFileError(Exception):
    """A library file cannot be read; ``reason`` says why in one word, ``detail`` for a person."""

    def __init__(self, reason: Reason, detail: str) -> None:
        super().__init__(reason.with_detail(detail))
        self.reason = reason
        self.detail = detail


def is_photo_name(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def check_library_path(path: str) -> str:
    """Raise UnsafePathError unless ``path`` is a clean relative POSIX path; return it."""
    if not path or len(path) > MAX_PATH_CHARS:
        raise UnsafePathError(f"not a library path (empty or over {MAX_PATH_CHARS} characters)")
    if any(ord(char) < 32 or ord(char) == 127 for char in path) or "\\" in path:
        raise UnsafePathError(f"not a library path (control character or backslash): {path!r}")
    if path.startswith("/"):
        raise UnsafePathError(f"an absolute path is not a library path: {path!r}")
    for segment in path.split("/"):
        if segment in ("", ".", ".."):
            raise UnsafePathError(f"a library path has no empty, '.' or '..' segment: {path!r}")
        if len(segment.encode("utf-8", "surrogatepass")) > MAX_SEGMENT_BYTES:
            raise UnsafePathError(f"a name in the path is over {MAX_SEGMENT_BYTES} bytes: {path!r}")
    return path


def resolve_library_path(root: Path, path: str) -> Path:
    """The real file for a library path, refusing one that leads outside ``root`` (symlinks included)."""
    check_library_path(path)
    real_root = root.resolve()
    full = (real_root / path).resolve()
    if not full.is_relative_to(real_root) or full == real_root:
        raise UnsafePathError(f"leads outside the photo folder: {path!r}")
    return full


def folders_of(path: str) -> list[str]:
    """Every folder a library path lies in, outermost first: ``a/b/c.jpg`` -> ``["a", "a/b"]``."""
    parts = path.split("/")[:-1]
    return ["/".join(parts[: depth + 1]) for depth in range(len(parts))]


def read_library_file(root: Path | None, path: str, max_bytes: int) -> bytes:
    """The bytes of a library file, at most ``max_bytes``; LibraryFileError says why not."""
    if root is None:
        raise LibraryFileError(Reason.NOT_FOUND, "no photo folder is configured here (PHOTOS_DIR)")
    try:
        full = resolve_library_path(root, path)
    except UnsafePathError as exc:
        raise LibraryFileError(Reason.UNSAFE_PATH, str(exc)) from None
    try:
        fd = os.open(full, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise LibraryFileError(Reason.NOT_FOUND, f"no photo at {path!r}") from None
    except OSError as exc:
        raise LibraryFileError(Reason.UNREADABLE, f"{path!r}: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise LibraryFileError(Reason.NOT_AN_IMAGE, f"{path!r} is not a regular file")
        if info.st_size > max_bytes:
            raise LibraryFileError(Reason.TOO_LARGE, f"{info.st_size} bytes is over the limit of {max_bytes}")
        with os.fdopen(os.dup(fd), "rb") as handle:
            data = handle.read(max_bytes + 1)
    except LibraryFileError:
        raise
    except OSError as exc:
        raise LibraryFileError(Reason.UNREADABLE, f"{path!r}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise LibraryFileError(Reason.TOO_LARGE, f"{path!r} grew over the limit of {max_bytes} bytes while read")
    return data
