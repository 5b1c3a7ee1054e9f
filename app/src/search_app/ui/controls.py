"""The search page's inputs: the query box and image upload, the "more like this" banner, and the
sidebar's filters. Each widget has a fixed key (tests and the paging signature rely on them)."""

from __future__ import annotations

import contextlib
from datetime import date

import streamlit as st

from dyimages_common.images.storage import FORMATS
from dyimages_common.store.errors import StoreUnavailable
from dyimages_common.store.types import Order
from search_app.clients import Clients
from search_app.search.collapse import NEAR_DUPLICATE_COSINE
from search_app.search.model import Filters, folder_filter
from search_app.search.thumbnails import Source, ThumbnailError
from search_app.settings import AppSettings
from search_app.ui import resources
from search_app.ui.safe_markdown import markdown_text

MAX_QUERY_CHARS = 1000
FORMAT_LABELS = {mime: mime.split("/")[1].upper() for _, mime in FORMATS.values()}
# The query image's file names the uploader offers: every stored format, under each name a file of it goes by.
QUERY_IMAGE_TYPES = sorted({ext for ext, _ in FORMATS.values()} | {"jpeg", "heif"})
ORDER_LABELS: dict[Order, str] = {"relevance": "Best match", "newest": "Newest", "oldest": "Oldest"}
EARLIEST, LATEST = date(1800, 1, 1), date(2999, 12, 31)  # the EXIF years dyimages_common.images.exif accepts


def more_like(sha256: str, source: Source) -> None:
    """ "More like this" on an indexed image: it becomes the query, the text and the upload are cleared."""
    st.session_state["like"] = sha256
    st.session_state["like_path"] = source
    st.session_state["query"] = ""
    st.session_state["uploader_key"] = st.session_state.get("uploader_key", 0) + 1


def _clear_like() -> None:
    st.session_state["like"] = None


def sidebar(settings: AppSettings, clients: Clients) -> tuple[Filters, int]:
    """The sidebar's result count and filters, as the search's :class:`Filters`."""
    with st.sidebar:
        top_k = st.slider("Results", 1, settings.app_max_top_k, settings.app_top_k, key="top_k")
        st.subheader("Filters")
        try:
            domains_known = resources.domain_choices(settings, clients)
        except StoreUnavailable:
            domains_known = []
        domains = st.multiselect("Source domain", domains_known, key="domains", placeholder="any")
        folder = st.text_input(
            "Folder",
            key="folder",
            placeholder="any, e.g. 2024/summer",
            help="Only photos of the photo folder (PHOTOS_DIR) in this folder or below it.",
        )
        formats = st.multiselect(
            "Format", list(FORMAT_LABELS), format_func=FORMAT_LABELS.__getitem__, key="formats", placeholder="any"
        )
        min_width = st.number_input("Minimum width (px)", 0, 100_000, 0, step=100, key="min_width")
        min_height = st.number_input("Minimum height (px)", 0, 100_000, 0, step=100, key="min_height")
        min_score = st.slider(
            "Minimum score",
            0.0,
            1.0,
            0.0,
            step=0.01,
            key="min_score",
            help="Hide weak matches: results whose cosine score is below this. 0 shows every result.",
        )
        collapse = st.checkbox(
            "Collapse near-duplicates",
            key="collapse",
            help=f"Show images within cosine {NEAR_DUPLICATE_COSINE} of a better result as '+N similar' on it.",
        )
        words = st.checkbox(
            "Match words in file names and URLs",
            key="match_words",
            help="Fuse the ranking with the images whose source URLs contain your words (e.g. IMG_2041); "
            "scores are then fused ranks, not cosines.",
        )
        date_from, date_to, order = _date_controls()
    filters = Filters(
        domains=tuple(domains),
        content_types=tuple(formats),
        min_width=int(min_width),
        min_height=int(min_height),
        min_score=float(min_score) or None,
        collapse=NEAR_DUPLICATE_COSINE if collapse else None,
        match_words=words,
        date_from=date_from,
        date_to=date_to,
        order=order,
        folder=folder_filter(folder),
    )
    return filters, int(top_k)


def _date_controls() -> tuple[date | None, date | None, Order]:
    """The photo's date: a range (either end open) and the order of the results."""
    st.subheader("Date")
    left, right = st.columns(2)
    date_from = left.date_input(
        "From", value=None, min_value=EARLIEST, max_value=LATEST, format="YYYY-MM-DD", key="date_from"
    )
    date_to = right.date_input(
        "To", value=None, min_value=EARLIEST, max_value=LATEST, format="YYYY-MM-DD", key="date_to"
    )
    order = st.radio(
        "Order",
        list(ORDER_LABELS),
        format_func=ORDER_LABELS.__getitem__,
        key="order",
        horizontal=True,
        help="Newest or oldest by the photo's own date (EXIF), else when it was downloaded. With no query, "
        "they list the whole index by date.",
    )
    if date_from and date_to and date_from > date_to:
        st.warning("**From** is after **To**: no photo can match.", icon=":material/event_busy:")
    return date_from, date_to, order  # type: ignore[return-value]


def query_inputs(settings: AppSettings) -> tuple[str, bytes | None]:
    """The query text and the uploaded query image (None without one)."""
    text_col, image_col = st.columns([3, 2], vertical_alignment="bottom")
    text = text_col.text_input(
        "Search images",
        key="query",
        max_chars=MAX_QUERY_CHARS,
        placeholder='Describe what you look for, e.g. "a red bicycle" or "beach -people"',
        help='Press Enter to search. "-word" or -"a phrase" leaves out images that match it.',
    )
    upload = image_col.file_uploader(
        "…or by image",
        type=QUERY_IMAGE_TYPES,
        key=f"query_image_{st.session_state.get('uploader_key', 0)}",
        max_upload_size=max(1, settings.max_image_bytes // (1024 * 1024)),
        help="Alone, or with the text: both are combined.",
    )
    return text, upload.getvalue() if upload is not None else None


def like_banner(settings: AppSettings, sha256: str) -> None:
    """The image "more like this" searches with, and a button to stop."""
    box = st.container(border=True, horizontal=True, vertical_alignment="center")
    with box:
        path = st.session_state.get("like_path")
        if path:
            with contextlib.suppress(ThumbnailError):
                st.image(resources.thumbnail_of(settings, path, 64), width=64)
        st.markdown(f"More like image {markdown_text(sha256[:12])}…")
        st.button("Clear", key="clear_like", on_click=_clear_like, icon=":material/close:")
