"""One look at the whole photo folder from stat alone: which photos are there, and which are refused
(the downloader's scanner and `dyimages audit` look the same way).

No file's bytes are read here: ``os.scandir`` lists each folder and one ``lstat`` per photo-named entry
gives size, times and inode, which is all a rescan needs to see that nothing changed. Names starting
with ``.`` are skipped (hidden files, ``.thumbnails``, the temporary files rsync and many copiers write
before renaming into place), and so is any name without a photo suffix.

Symlinks are never followed out: a link to a file inside the folder counts as that file under the
link's path; a link that leads outside (or nowhere) is refused with a reason and never opened; a
link to a folder is not descended (its target, if inside, is scanned anyway; this also rules out
loops). A folder that cannot be listed is refused as a whole, and the files known under it are kept
as they are, not taken for deleted.
"""

from __future__ import annotations

import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from dyimages_common.library.paths import is_photo_name
from dyimages_common.reasons import Reason


@dataclass(frozen=True, slots=True)
class Stat:
    """What a rescan compares: a file whose four values are unchanged is not read again."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, info: os.stat_result) -> Stat:
        return cls(info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)

    def same_file(self, other: Stat) -> bool:
        """The same file under another name: a rename keeps inode, size and mtime (not ctime)."""
        return (self.inode, self.size, self.mtime_ns) == (other.inode, other.size, other.mtime_ns)


NO_STAT = Stat(0, 0, 0, 0)


@dataclass(frozen=True, slots=True)
class Refusal:
    reason: Reason
    detail: str
    stat: Stat = NO_STAT


@dataclass
class Walk:
    files: dict[str, Stat] = field(default_factory=dict)
    refused: dict[str, Refusal] = field(default_factory=dict)
    unlisted: list[str] = field(default_factory=list)  # folders that could not be listed (their files are kept)
    folders: int = 0
    seconds: float = 0.0


class LibraryMissing(OSError):
    """PHOTOS_DIR is not a folder that can be listed (not mounted?): nothing is concluded from it."""


def _relative(prefix: str, name: str) -> str:
    return f"{prefix}/{name}" if prefix else name


def look_at(root: Path, real_root: Path, relative: str) -> Stat | Refusal | None:
    """One path's stat, or why it is refused; None when it is not there (or not a photo at all)."""
    full = os.path.join(root, relative)
    try:
        info = os.lstat(full)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return Refusal(Reason.UNREADABLE, f"cannot stat: {exc.strerror or exc}")
    if stat.S_ISLNK(info.st_mode):
        target = Path(os.path.realpath(full))
        if not target.is_relative_to(real_root):
            return Refusal(
                Reason.UNSAFE_PATH, "a symlink that leads outside the photo folder (not followed)", Stat.of(info)
            )
        try:
            info = os.stat(full)
        except OSError:
            return Refusal(Reason.UNREADABLE, "a symlink to nothing", Stat.of(info))
        if stat.S_ISDIR(info.st_mode):
            return None  # a folder inside the library: scanned under its own path
    if stat.S_ISREG(info.st_mode):
        return Stat.of(info)
    if stat.S_ISDIR(info.st_mode):
        return None
    return Refusal(Reason.NOT_AN_IMAGE, "not a regular file (a device, FIFO or socket)", Stat.of(info))


def _folder_outside(link: str, real_root: Path) -> bool:
    target = Path(os.path.realpath(link))
    return not target.is_relative_to(real_root) and target.is_dir()


def walk_library(root: Path) -> Walk:
    """Every photo-named file under ``root`` with its stat, and every refused path with its reason."""
    started = time.perf_counter()
    real_root = root.resolve()
    if not root.is_dir():
        raise LibraryMissing(f"PHOTOS_DIR={str(root)!r} is not a folder")
    walk = Walk()
    pending = [""]
    while pending:
        prefix = pending.pop()
        walk.folders += 1
        try:
            with os.scandir(os.path.join(root, prefix) if prefix else root) as entries:
                listed = list(entries)
        except OSError as exc:
            if not prefix:
                raise LibraryMissing(f"PHOTOS_DIR={str(root)!r} cannot be listed: {exc.strerror or exc}") from exc
            walk.unlisted.append(prefix)
            walk.refused[prefix] = Refusal(Reason.UNREADABLE, f"the folder cannot be listed: {exc.strerror or exc}")
            continue
        for entry in listed:
            name = entry.name
            if name.startswith("."):
                continue
            relative = _relative(prefix, name)
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                shown = os.fsencode(relative).decode("utf-8", "backslashreplace")
                walk.refused[shown] = Refusal(Reason.UNSAFE_PATH, "the name is not valid UTF-8")
                continue
            if entry.is_dir(follow_symlinks=False):
                pending.append(relative)
                continue
            if not is_photo_name(name):
                if entry.is_symlink() and _folder_outside(entry.path, real_root):
                    walk.refused[relative] = Refusal(
                        Reason.UNSAFE_PATH, "a symlinked folder that leads outside the photo folder (not followed)"
                    )
                continue
            found = look_at(root, real_root, relative)
            if isinstance(found, Stat):
                walk.files[relative] = found
            elif isinstance(found, Refusal):
                walk.refused[relative] = found
    walk.seconds = time.perf_counter() - started
    return walk
