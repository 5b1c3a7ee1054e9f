"""The result grid of the search page: one card per hit (thumbnail, rank, score, source, the photo's date
and camera, buttons) and the details dialog. Every payload value is shown as escaped text
(:mod:`search_app.ui.safe_markdown`)."""

from __future__ import annotations

import streamlit as st

from search_app.search.hit_text import date_label
from search_app.search.model import Hit
from search_app.search.thumbnails import ThumbnailError, source_of
from search_app.settings import AppSettings
from search_app.ui import resources
from search_app.ui.controls import FORMAT_LABELS, more_like
from search_app.ui.safe_markdown import markdown_link, markdown_text


@st.dialog("Image", width="large")
def _details(hit: Hit, settings: AppSettings) -> None:
    try:
        st.image(
            resources.thumbnail_of(settings, source_of(hit), settings.app_preview_px), alt=_name(hit), width="stretch"
        )
    except ThumbnailError as exc:
        st.warning(f"The image cannot be shown: {markdown_text(exc)}")
    kind = markdown_text(FORMAT_LABELS.get(hit.content_type, hit.content_type))
    size = f" · {hit.bytes:,} bytes" if hit.bytes else ""
    st.markdown(f"**Score** {hit.score:.4f} · **{hit.width} × {hit.height}** · {kind}{size}")
    sources = [f"- {markdown_link(url, url)}" for url in hit.urls]
    sources += [f"- {markdown_text(path)} (photo folder)" for path in hit.library_paths]
    st.markdown("**Sources**\n\n" + "\n".join(sources))
    taken = f"taken {hit.taken_at.isoformat()} · " if hit.taken_at else ""
    camera = f"camera {hit.camera} · " if hit.camera else ""
    st.caption(
        markdown_text(
            f"{taken}{camera}sha256 {hit.sha256} · downloaded {hit.downloaded_at or '-'} · "
            f"indexed {hit.indexed_at or '-'} · model {hit.model or '-'}"
        )
    )
    st.button("More like this", key=f"dialog_like_{hit.sha256}", on_click=more_like, args=(hit.sha256, source_of(hit)))


def _card(hit: Hit, settings: AppSettings, scored: bool) -> None:
    try:
        st.image(
            resources.thumbnail_of(settings, source_of(hit), settings.app_thumbnail_px),
            alt=f"Result {hit.rank}: {_name(hit)}",
            width="stretch",
        )
    except ThumbnailError:
        st.caption(":material/broken_image: image file missing")
    similar = f" · +{len(hit.similar)} similar" if hit.similar else ""
    score = f" · {hit.score:.3f}" if scored else ""
    if hit.urls:
        where = markdown_link(hit.domains[0] if hit.domains else hit.url, hit.url)
    else:  # a photo of the library: its folder and name, as the folder filter takes them
        where = f":material/folder: {markdown_text(hit.library_paths[0] if hit.library_paths else '')}"
    st.markdown(f"**#{hit.rank}**{score} · {where}{similar}")
    st.caption(markdown_text(" · ".join(part for part in (date_label(hit), hit.camera) if part)))
    left, right = st.columns(2)
    if left.button("Details", key=f"details_{hit.sha256}", width="stretch"):
        _details(hit, settings)
    right.button(
        "Similar",
        key=f"like_{hit.sha256}",
        on_click=more_like,
        args=(hit.sha256, source_of(hit)),
        width="stretch",
        help="More like this",
    )


def _name(hit: Hit) -> str:
    """What a result is called: its first URL, else its first path in the photo folder."""
    return hit.url or (hit.library_paths[0] if hit.library_paths else hit.sha256)


def result_grid(hits: list[Hit], settings: AppSettings, *, scored: bool = True) -> None:
    """The results as cards; ``scored`` False (browsing by date) leaves out the meaningless score."""
    grid = st.grid("auto", min_column_width=max(160, settings.app_thumbnail_px * 3 // 4), key="results")
    for hit in hits:
        with grid.cell():
            _card(hit, settings, scored)
