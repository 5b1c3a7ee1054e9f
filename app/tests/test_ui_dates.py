"""The search page's date controls, driven by Streamlit's AppTest against photos with real EXIF indexed
by the real indexer and embedding service (testkit.dated_library): the date range keeps the photos taken
in it, the order browses the index newest or oldest first without a query, and each card's caption says
the photo's date and camera as escaped text (a camera name written as a Markdown link stays text)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from search_app.ui.safe_markdown import markdown_text
from testkit.app_driver import running_app
from testkit.dated_library import DatedPhoto, index_dated
from testkit.indexed_library import Library

pytestmark = pytest.mark.integration


@pytest.fixture
def dated(own_library: Library, tmp_path: Path) -> dict[str, DatedPhoto]:
    return index_dated(own_library, tmp_path / "indexer.log")


def shown(at: AppTest, photos: dict[str, DatedPhoto]) -> list[str]:
    assert not at.exception, at.exception
    by_sha = {p.sha256: name for name, p in photos.items()}
    return [by_sha[hit.sha256] for hit in at.session_state["hits"]]


def test_order_browses_by_date_and_the_range_filters(dated: dict[str, DatedPhoto]) -> None:
    with running_app() as at:
        at.radio(key="order").set_value("newest").run()
        newest = ["scan-no-exif.jpg", "party-2023.jpg", "midnight-2022.jpg", "snow-2021.jpg", "beach-2018.jpg"]
        assert shown(at, dated) == newest
        cards = [m.value for m in at.markdown if m.value.startswith("**#")]
        assert cards[0].startswith("**#1** · [")  # browsing: rank then source, no score

        at.radio(key="order").set_value("oldest").run()
        assert shown(at, dated) == newest[::-1]

        at.date_input(key="date_from").set_value(date(2019, 1, 1))
        at.date_input(key="date_to").set_value(date(2023, 12, 31)).run()
        assert shown(at, dated) == ["snow-2021.jpg", "midnight-2022.jpg", "party-2023.jpg"]

        at.radio(key="order").set_value("relevance").run()  # with no query: nothing to search for
        at.text_input(key="query").input("a photo").run()
        assert set(shown(at, dated)) == {"snow-2021.jpg", "midnight-2022.jpg", "party-2023.jpg"}

        at.date_input(key="date_from").set_value(date(2024, 1, 1)).run()  # after "To"
        assert any("is after" in w.value for w in at.warning)
        assert shown(at, dated) == []


def test_each_card_says_the_photos_date_and_camera_as_text(dated: dict[str, DatedPhoto]) -> None:
    with running_app() as at:
        at.radio(key="order").set_value("newest").run()
        assert not at.exception, at.exception
        captions = [c.value for c in at.caption]
        assert markdown_text("2021-01-30 · NIKON D750") in captions
        assert markdown_text("2025-06-01 (downloaded)") in captions
        evil = markdown_text("2023-12-31 · [evil](javascript:alert(1)) <b>[bold]X")
        assert evil in captions
        assert "](" not in evil  # the Markdown link is escaped: shown as text, never a link
