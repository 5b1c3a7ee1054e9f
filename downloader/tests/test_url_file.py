"""Reading URLS_FILE: what counts as a URL, and noticing edits."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from downloader.url_file import UrlFileReader, parse_lines

pytestmark = pytest.mark.unit


def test_comments_blanks_whitespace_and_repeats() -> None:
    parsed = parse_lines(
        "# a comment\n"
        "\n"
        "   http://example.com/a.jpg   \n"
        "http://example.com/b.jpg # the second\n"
        "http://EXAMPLE.com/a.jpg\n"
        "http://example.com/a.jpg#part\n"
        "https://example.com/c.jpg?size=large&x=1\n"
        "\t  \r\n"
    )
    assert parsed.urls == [
        "http://example.com/a.jpg",
        "http://example.com/b.jpg",
        "https://example.com/c.jpg?size=large&x=1",
    ]
    assert parsed.invalid == []


def test_invalid_lines_are_reported_with_their_number() -> None:
    parsed = parse_lines(
        "http://example.com/ok.jpg\nftp://example.com/a.jpg\nexample.com/b.jpg\nhttp://\nhttp://a b/c\nhttp://h:99999/\n"
    )
    assert parsed.urls == ["http://example.com/ok.jpg"]
    assert [(line.number, line.text) for line in parsed.invalid] == [
        (2, "ftp://example.com/a.jpg"),
        (3, "example.com/b.jpg"),
        (4, "http://"),
        (5, "http://a b/c"),
        (6, "http://h:99999/"),
    ]
    assert "scheme 'ftp'" in parsed.invalid[0].reason


def test_reader_sees_changes_only_when_the_file_changed(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    reader = UrlFileReader(path)
    assert reader.read_if_changed() is None  # no file yet
    path.write_text("http://example.com/1.jpg\n")
    assert reader.read_if_changed() == ["http://example.com/1.jpg"]
    assert reader.read_if_changed() is None  # unchanged
    with path.open("a") as handle:
        handle.write("http://example.com/2.jpg\n")
    assert reader.read_if_changed() == ["http://example.com/1.jpg", "http://example.com/2.jpg"]


def test_reader_notices_a_new_file_renamed_into_place(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("http://example.com/1.jpg\n")
    reader = UrlFileReader(path)
    assert reader.read_if_changed() == ["http://example.com/1.jpg"]
    replacement = tmp_path / ".urls.txt.swp"
    replacement.write_text("http://example.com/0.jpg\nhttp://example.com/1.jpg\n")
    stat = path.stat()
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # same mtime: only the inode tells
    os.replace(replacement, path)
    assert reader.read_if_changed() == ["http://example.com/0.jpg", "http://example.com/1.jpg"]


def test_a_last_line_without_newline_waits_until_the_file_is_still(tmp_path: Path) -> None:
    path = tmp_path / "urls.txt"
    path.write_text("http://example.com/1.jpg\nhttp://example.com/2")  # someone is still typing
    reader = UrlFileReader(path)
    assert reader.read_if_changed() == ["http://example.com/1.jpg"]
    assert reader.read_if_changed() == ["http://example.com/1.jpg", "http://example.com/2"]  # it stayed so
    once = UrlFileReader(path)
    assert once.read_if_changed(complete_last_line=True) == ["http://example.com/1.jpg", "http://example.com/2"]


def test_invalid_lines_are_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    path = tmp_path / "urls.txt"
    path.write_text("nonsense\n")
    reader = UrlFileReader(path)
    reader.read_if_changed()
    with path.open("a") as handle:
        handle.write("http://example.com/1.jpg\n")
    reader.read_if_changed()
    assert [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()] == [
        f"{path} line 1 skipped: scheme '(none)' is not http or https ('nonsense')"
    ]
