"""The URL file's format (URLS_FILE): one URL per line, read the same way by the downloader and the audit.

Blank lines and ``#`` comments (whole-line or after a URL) are ignored and surrounding whitespace
stripped. A line that is not an absolute http(s) URL is reported with its line number and skipped.
URLs are normalised only as far as it is safe (fragment dropped, host lower-case), so the same URL
written twice is one URL, and the downloader's state and ``dyimages audit`` name it alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from yarl import URL

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


def read_url_file(path: Path) -> UrlList:
    """Every URL of the file as it is now (a last line without a newline included)."""
    return parse_lines(path.read_bytes().decode("utf-8", errors="replace"))
