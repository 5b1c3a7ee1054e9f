"""Reading URLS_FILE: one URL per line, and noticing when the file changes.

Blank lines and ``#`` comments (whole-line or after a URL) are ignored and surrounding
whitespace stripped. A line that is not an absolute http(s) URL is reported with its line number
and skipped. URLs are normalised only as far as it is safe (fragment dropped, host lower-case),
so the same URL written twice is fetched once.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from yarl import URL

log = logging.getLogger(__name__)

MAX_URL_LENGTH = 8192  # the message schema's limit
# A comment after a URL needs whitespace before its `#`; a `#` inside a URL is its fragment.
_TRAILING_COMMENT = re.compile(r"\s+#.*$")


@dataclass(frozen=True)
class InvalidLine:
    number: int
    text: str
    reason: str


@dataclass(frozen=True)
class UrlList:
    urls: list[str]  # in file order, first occurrence only
    invalid: list[InvalidLine]


def normalise_url(text: str) -> str:
    """The canonical form of an absolute http(s) URL, or ValueError saying what is wrong."""
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"longer than {MAX_URL_LENGTH} characters")
    if any(ch.isspace() for ch in text):
        raise ValueError("contains whitespace")
    try:
        url = URL(text)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"malformed URL ({exc})") from None
    if url.scheme not in {"http", "https"}:
        raise ValueError(f"scheme {url.scheme or '(none)'!r} is not http or https")
    try:
        host = url.host
        url.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError(f"malformed URL ({exc})") from None
    if not host:
        raise ValueError("no host")
    normal = str(url.with_fragment(None))
    if len(normal) > MAX_URL_LENGTH:
        raise ValueError(f"longer than {MAX_URL_LENGTH} characters")
    return normal


def parse_lines(text: str) -> UrlList:
    urls: dict[str, None] = {}
    invalid: list[InvalidLine] = []
    for number, raw in enumerate(text.split("\n"), start=1):  # numbered as editors number them
        line = _TRAILING_COMMENT.sub("", raw).strip()
        if line.startswith("#"):
            continue
        if not line:
            continue
        try:
            urls.setdefault(normalise_url(line), None)
        except ValueError as exc:
            invalid.append(InvalidLine(number, line, str(exc)))
    return UrlList(list(urls), invalid)


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
