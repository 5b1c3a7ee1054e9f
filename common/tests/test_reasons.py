"""The failure reasons: every member explained, HTTP statuses to members, old recorded words read back."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from dyimages_common import reasons
from dyimages_common.reasons import DOWNLOAD_REASONS, EXPLANATIONS, Reason


def test_every_reason_has_a_one_line_explanation() -> None:
    assert set(EXPLANATIONS) == set(Reason)
    for reason in Reason:
        assert reason.explanation.strip(), reason
        assert "\n" not in reason.explanation, reason


def test_reason_words_are_short_lowercase_words() -> None:
    """The words are metric labels and header values: short, fixed, no spaces or colons."""
    for reason in Reason:
        assert reason.value.replace("_", "").isalnum(), reason
        assert reason.value == reason.value.lower(), reason
        assert len(reason.value) <= 32


@pytest.mark.parametrize(
    ("status", "reason"),
    [
        (404, Reason.HTTP_404),
        (403, Reason.HTTP_403),
        (429, Reason.HTTP_429),
        (503, Reason.HTTP_503),
        (418, Reason.HTTP_4XX),
        (499, Reason.HTTP_4XX),
        (507, Reason.HTTP_5XX),
        (204, Reason.HTTP_OTHER),
        (304, Reason.HTTP_OTHER),
        (600, Reason.HTTP_OTHER),
    ],
)
def test_an_http_status_becomes_its_own_member_or_its_class(status: int, reason: Reason) -> None:
    assert Reason.for_http_status(status) is reason


@pytest.mark.parametrize(
    ("recorded", "reason"),
    [
        ("http_404: 404 Not Found", Reason.HTTP_404),
        ("http_418: 418 I'm a teapot", Reason.HTTP_4XX),  # recorded before the classes: still reads
        ("http_599: odd", Reason.HTTP_5XX),
        ("http_4xx: 418 I'm a teapot", Reason.HTTP_4XX),
        ("refused_address: 127.0.0.2 loopback", Reason.REFUSED_ADDRESS),
        ("not_an_image", Reason.NOT_AN_IMAGE),
        ("http_4040: odd", Reason.UNKNOWN),
        ("gremlins: a word from another version", Reason.UNKNOWN),
        ("", Reason.UNKNOWN),
        (None, Reason.UNKNOWN),
    ],
)
def test_a_recorded_error_reads_back_as_a_member(recorded: str | None, reason: Reason) -> None:
    assert Reason.of_error(recorded) is reason


def test_parse_takes_header_bytes_and_round_trips_every_member() -> None:
    assert Reason.parse(b"embed_timeout") is Reason.EMBED_TIMEOUT
    for reason in Reason:
        assert Reason.parse(reason.value) is reason
        assert Reason.of_error(reason.with_detail("some detail: with a colon")) is reason


def test_with_detail_writes_the_word_then_the_detail() -> None:
    assert Reason.HTTP_404.with_detail("404 Not Found") == "http_404: 404 Not Found"
    assert Reason.TIMEOUT.with_detail("") == "timeout"


def test_download_reasons_hold_only_what_a_download_can_fail_with() -> None:
    assert Reason.HTTP_404 in DOWNLOAD_REASONS
    assert Reason.REFUSED_ADDRESS in DOWNLOAD_REASONS
    assert Reason.HTTP_ERROR in DOWNLOAD_REASONS
    assert Reason.UNKNOWN in DOWNLOAD_REASONS  # old rows with a word this version does not know
    assert not {Reason.INVALID_JSON, Reason.EMBED_TIMEOUT, Reason.DELIVERY_LIMIT} & set(DOWNLOAD_REASONS)
    assert len(set(DOWNLOAD_REASONS)) == len(DOWNLOAD_REASONS)


def _with_member(after: str, line: str) -> dict[str, Any]:
    """The reasons module's own source run with ``line`` added after the member ``after``."""
    source = inspect.getsource(reasons)
    anchor = next(row for row in source.splitlines(keepends=True) if row.lstrip().startswith(f"{after} = "))
    namespace: dict[str, Any] = {"__name__": "reasons_plus_one"}
    exec(compile(source.replace(anchor, anchor + line), "reasons", "exec"), namespace)
    return namespace


def test_a_new_member_joins_the_lists_of_its_stage() -> None:
    """The lists are derived, not kept: the module with one more member lists it at once where it belongs."""
    fetch = _with_member("REFUSED_ADDRESS", '    TOO_SLOW = "too_slow", Stage.FETCH\n')
    assert fetch["Reason"].TOO_SLOW in fetch["DOWNLOAD_REASONS"]
    assert len(fetch["DOWNLOAD_REASONS"]) == len(DOWNLOAD_REASONS) + 1
    assert fetch["Reason"].TOO_SLOW not in fetch["LIBRARY_REASONS"]
    check = _with_member("TOO_LARGE", '    TOO_WIDE = "too_wide", Stage.BYTES\n')
    assert check["Reason"].TOO_WIDE in check["LIBRARY_REASONS"]
    assert check["Reason"].TOO_WIDE in check["DOWNLOAD_REASONS"]
