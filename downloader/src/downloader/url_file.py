"""Reading URLS_FILE when it changes; the file's format is :mod:`dyimages_common.urls.list_format`'s.

The same URL written twice is fetched once; an invalid line is reported once, with its number.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from dyimages_common.urls.list_format import InvalidLine, UrlList, normalise_url, parse_lines

log = logging.getLogger(__name__)

__all__ = ["FileStamp", "InvalidLine", "UrlFileReader", "UrlList", "normalise_url", "parse_lines", "stamp"]


@dataclass(frozen=True)
class FileStamp:
    """What changes when a file is edited in place, appended to, or replaced by a rename."""

    inode: int
    size: int
    mtime_ns: int


def stamp(path: Path) -> FileStamp | None:
    try:
        result = os.stat(path)
    except FileNotFoundError:
        return None
    return FileStamp(result.st_ino, result.st_size, result.st_mtime_ns)


class UrlFileReader:
    """Reads URLS_FILE when it changed, and holds back a last line still being written.

    A last line without a newline may be half-written by whoever appends; it is used once the
    file has not changed for one more look (``complete_last_line`` forces it, for ``--once``).
    Invalid lines are reported once each, not on every re-read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp: FileStamp | None = None
        self._held_back = False
        self._reported: set[tuple[int, str]] = set()
        self._missing_reported = False

    def read_if_changed(self, *, complete_last_line: bool = False) -> list[str] | None:
        """The URLs in the file if it changed since the last call (or a held-back line is due)."""
        current = stamp(self.path)
        if current is None:
            if not self._missing_reported:
                log.warning("URL file %s does not exist (yet); waiting for it", self.path)
                self._missing_reported = True
            self._stamp = None
            return None
        self._missing_reported = False
        unchanged = current == self._stamp
        if unchanged and not self._held_back:
            return None
        text = self.path.read_bytes().decode("utf-8", errors="replace")
        self._stamp = current
        last_line_open = bool(text) and not text.endswith(("\n", "\r"))
        if last_line_open and not (complete_last_line or unchanged):
            self._held_back = True
            text = text[: text.rfind("\n") + 1] if "\n" in text else ""
        else:
            self._held_back = False
        parsed = parse_lines(text)
        for line in parsed.invalid:
            key = (line.number, line.text)
            if key not in self._reported:
                self._reported.add(key)
                log.warning(
                    "%s line %d skipped: %s (%r)",
                    self.path,
                    line.number,
                    line.reason,
                    line.text[:200],
                    extra={"line": line.number, "reason": "invalid_line"},
                )
        return parsed.urls
