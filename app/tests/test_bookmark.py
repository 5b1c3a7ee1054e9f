"""Bookmarkable searches: the search page keeps its query, filters, order and page in the URL, and a
session opened on such a URL shows the same results (AppTest over the library indexed by the real
indexer and embedding service; the Chromium test opens the URL in a real browser)."""

from __future__ import annotations

import pytest

from testkit.app_driver import running_app
from testkit.indexed_library import Library

pytestmark = pytest.mark.integration


def test_a_search_s_url_opens_the_same_results(library_environment: Library) -> None:
    with running_app() as at:
        at.text_input(key="query").input("a red picture -blue").run()
        at.slider(key="top_k").set_value(5).run()
        at.multiselect(key="domains").select("photos.example").run()
        at.checkbox(key="collapse").check().run()
        at.button(key="load_more").click().run()
        assert not at.exception, at.exception
        url = dict(at.query_params)
        shown = [hit.sha256 for hit in at.session_state["hits"]]
    assert url["q"] == "a red picture -blue"
    assert url["domain"] == "photos.example"
    assert (url["n"], url["shown"], url["collapse"]) == ("5", str(5 + 12), "1")  # one "Load more" page
    with running_app(url) as again:
        assert again.text_input(key="query").value == "a red picture -blue"
        assert again.multiselect(key="domains").value == ["photos.example"]
        assert [hit.sha256 for hit in again.session_state["hits"]] == shown


def test_browse_by_date_and_more_like_this_come_back_from_the_url(library_environment: Library) -> None:
    like = library_environment.pictures[2].sha256
    with running_app({"order": "oldest", "date_from": "2000-01-01", "n": "4"}) as at:
        assert at.radio(key="order").value == "oldest"
        assert len(at.session_state["hits"]) == 4
        assert at.query_params["order"] == "oldest"
    with running_app({"like": like, "n": "3"}) as at:
        hits = [hit.sha256 for hit in at.session_state["hits"]]
        assert len(hits) == 3
        assert like not in hits


def test_values_a_widget_cannot_hold_are_left_out(library_environment: Library) -> None:
    hostile = {
        **{"n": "99999", "min_score": "7", "like": "../../etc/passwd", "order": "sideways"},
        **{"domain": "evil.example", "format": "exe", "date_from": "yesterday", "q": "a red picture"},
    }
    with running_app(hostile) as at:
        assert at.slider(key="top_k").value == 12
        assert at.radio(key="order").value == "relevance"
        assert at.multiselect(key="domains").value == []
        assert at.session_state["like"] is None
        assert len(at.session_state["hits"]) == 12


def test_the_photo_folder_filter_comes_back_from_the_url(library_environment: Library) -> None:
    with running_app({"q": "a red picture", "folder": "/2024/summer/"}) as at:
        assert at.text_input(key="folder").value == "/2024/summer/"
        assert at.session_state["hits"] == []  # the library's images are downloads: no photo folder holds them
        assert at.query_params["folder"] == "2024/summer"
