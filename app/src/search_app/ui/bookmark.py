"""The search in the page's URL (``st.query_params``), so a search can be reloaded, bookmarked and shared.

The first run of a session reads the URL into the widgets' state (a value that does not fit its widget is
left out, never an error); every run after a search writes the search back: the text, the "more like
this" image, the filters, the order, the results per page (``n``) and how many are shown (``shown``, the
"Load more" page). Parameters are named as the HTTP API's (``q``, ``domain``, ``format``, ...). An uploaded
query image is not in the URL: its bytes are the query.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date
from typing import Any

import streamlit as st

from dyimages_common.store.errors import StoreUnavailable
from search_app.clients import Clients
from search_app.search.model import FORMAT_NAMES, Filters
from search_app.settings import AppSettings
from search_app.ui import resources

RESTORED = "bookmark_restored"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_CONTENT_TYPES = {mime: name for name, mime in FORMAT_NAMES.items()}


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = int(text)
        if not low <= value <= high:
            raise ValueError(text)
        return value

    return parse


def _score(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise ValueError(text)
    return value


def _order(text: str) -> str:
    if text not in ("relevance", "newest", "oldest"):
        raise ValueError(text)
    return text


def _like(text: str) -> str:
    if not _SHA256.match(text):
        raise ValueError(text)
    return text


def _single_values(settings: AppSettings) -> dict[str, tuple[str, Callable[[str], Any]]]:
    """URL parameter -> (widget key, parser that raises ValueError on what the widget cannot hold)."""
    return {
        "q": ("query", lambda text: text[:1000]),
        "folder": ("folder", lambda text: text[:1000]),
        "n": ("top_k", _int(1, settings.app_max_top_k)),
        "shown": ("bookmark_shown", _int(1, settings.app_max_results)),
        "min_width": ("min_width", _int(0, 100_000)),
        "min_height": ("min_height", _int(0, 100_000)),
        "min_score": ("min_score", _score),
        "collapse": ("collapse", lambda text: text == "1"),
        "words": ("match_words", lambda text: text == "1"),
        "date_from": ("date_from", date.fromisoformat),
        "date_to": ("date_to", date.fromisoformat),
        "order": ("order", _order),
        "like": ("like", _like),
    }


def restore(settings: AppSettings, clients: Clients) -> None:
    """Once per session, before the widgets exist: the URL's search into their state. ``shown`` waits in
    ``bookmark_shown`` for the search page, which sets the count shown when the search changes."""
    if st.session_state.get(RESTORED):
        return
    st.session_state[RESTORED] = True
    try:
        known_domains = resources.domain_choices(settings, clients) if "domain" in st.query_params else []
    except StoreUnavailable:
        known_domains = []
    params = st.query_params
    for name, (key, parse) in _single_values(settings).items():
        if name in params:
            try:
                st.session_state[key] = parse(params[name])
            except ValueError:
                continue
    if domains := [d for d in params.get_all("domain") if d in known_domains]:
        st.session_state["domains"] = domains
    if formats := [FORMAT_NAMES[f] for f in params.get_all("format") if f in FORMAT_NAMES]:
        st.session_state["formats"] = formats


def save(text: str, like: str | None, filters: Filters, top_k: int, shown: int) -> None:
    """The search shown now into the URL (only what differs from a fresh page)."""
    params: dict[str, str | list[str]] = {}
    if text:
        params["q"] = text
    if like:
        params["like"] = like
    if filters.folder:
        params["folder"] = filters.folder
    if filters.domains:
        params["domain"] = list(filters.domains)
    if filters.content_types:
        params["format"] = [_CONTENT_TYPES[mime] for mime in filters.content_types if mime in _CONTENT_TYPES]
    for name, value in (("min_width", filters.min_width), ("min_height", filters.min_height)):
        if value:
            params[name] = str(value)
    if filters.min_score:
        params["min_score"] = f"{filters.min_score:g}"
    if filters.collapse is not None:
        params["collapse"] = "1"
    if filters.match_words:
        params["words"] = "1"
    if filters.date_from:
        params["date_from"] = filters.date_from.isoformat()
    if filters.date_to:
        params["date_to"] = filters.date_to.isoformat()
    if filters.order != "relevance":
        params["order"] = filters.order
    params["n"] = str(top_k)
    if shown != top_k:
        params["shown"] = str(shown)
    if {k: st.query_params.get_all(k) for k in st.query_params} != {
        k: v if isinstance(v, list) else [v] for k, v in params.items()
    }:
        st.query_params.from_dict(params)
