"""The work queue's second source: a library message is schema version 2, which a consumer of version 1
refuses on its version (``unsupported_schema``, dead-lettered) instead of reading a library path as a
stored image; a current consumer reads both."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from dyimages_common.library.state import ImageFacts, library_message
from dyimages_common.messaging.messages import MAX_LIBRARY_PATHS, ImageDownloaded, LibraryFiles, parse_message
from dyimages_common.reasons import Reason
from indexer.batch import refusal_for

pytestmark = pytest.mark.unit

SHA = "ab" * 32
NOW = datetime(2026, 5, 1, tzinfo=UTC)


def library(**overrides: object) -> LibraryFiles:
    fields = {
        "sha256": SHA,
        "paths": ("2024/a.jpg", "copy of a.jpg"),
        "seq": 7,
        "content_type": "image/jpeg",
        "width": 4032,
        "height": 3024,
        "bytes": 3_000_000,
        "modified_at": NOW,
    }
    return LibraryFiles.model_validate({**fields, **overrides})


def test_a_library_message_round_trips_and_names_its_source() -> None:
    body = library().model_dump_json()
    assert '"schema_version":2' in body
    assert '"source":"library"' in body
    assert parse_message(body) == library()


def test_a_version_1_consumer_refuses_it_on_its_schema_version() -> None:
    """ImageDownloaded is exactly what every consumer before version 2 validates a body with."""
    with pytest.raises(ValidationError) as refused:
        ImageDownloaded.model_validate_json(library().model_dump_json())
    assert refusal_for(0, refused.value).reason is Reason.UNSUPPORTED_SCHEMA


def test_web_messages_stay_version_1_and_unknown_versions_are_refused_as_such() -> None:
    web = ImageDownloaded(
        sha256=SHA,
        path=f"ab/ab/{SHA}.jpg",
        url="https://example.org/a.jpg",
        content_type="image/jpeg",
        width=1,
        height=1,
        bytes=1,
        downloaded_at=NOW,
    )
    assert parse_message(web.model_dump_json()) == web
    future = library().model_dump_json().replace('"schema_version":2', '"schema_version":3')
    with pytest.raises(ValidationError) as refused:
        parse_message(future)
    assert refusal_for(0, refused.value).reason is Reason.UNSUPPORTED_SCHEMA
    with pytest.raises(ValidationError) as broken:
        parse_message(b"{not json")
    assert refusal_for(0, broken.value).reason is Reason.INVALID_JSON


@pytest.mark.parametrize("paths", [("../etc/passwd",), ("/abs.jpg",), ("a.jpg", "a.jpg")])
def test_a_path_that_leads_out_or_repeats_makes_the_message_invalid(paths: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as refused:
        library(paths=paths)
    assert refusal_for(0, refused.value).reason is Reason.INVALID_MESSAGE


def test_no_path_left_is_a_valid_message() -> None:
    assert library(paths=()).paths == ()


def test_a_point_lists_at_most_256_copies_of_one_photo() -> None:
    copies = [(f"copies/{number:04d}.jpg", 0) for number in range(300)]
    facts = ImageFacts(content_type="image/jpeg", width=1, height=1, bytes=1)
    assert len(library_message(SHA, facts, copies, seq=1).paths) == MAX_LIBRARY_PATHS == 256
    with pytest.raises(ValidationError):
        library(paths=tuple(path for path, _ in copies))
