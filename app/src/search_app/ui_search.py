"""The search page: query box, image upload, "more like this", filters, result grid, details, load more."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from dataclasses import dataclass

import streamlit as st

from dyimages_common.embedding_api import EmbeddingRequestError, EmbeddingUnavailable
from dyimages_common.storage import FORMATS
from search_app import resources
from search_app.clients import Clients
from search_app.search import (
    NEAR_DUPLICATE_COSINE,
    CollectionMissing,
    Filters,
    Hit,
    IndexMismatch,
    QdrantUnavailable,
    Query,
    QueryError,
    index_size,
    search,
)
from search_app.settings import AppSettings
from search_app.thumbnails import ThumbnailError

log = logging.getLogger(__name__)

MARKDOWN_SPECIAL = set("\\`*_{}[]<>()#+-.!|~$:")
MAX_QUERY_CHARS = 1000
FORMAT_LABELS = {mime: mime.split("/")[1].upper() for _, mime in FORMATS.values()}

EMPTY_INDEX = (
    "**The index is empty.** Add image URLs, one per line, to `downloader/image_urls.txt` (the file the "
    "downloader watches): it fetches them, the indexer embeds them, and they appear here within seconds. "
    "The Status page shows the progress and any failures."
)


@dataclass(frozen=True)
class Request:
    query: Query
    top_k: int

    @property
    def signature(self) -> str:
        """Changes whenever the results would: paging starts over."""
        q = self.query
        image = hashlib.sha256(q.image).hexdigest() if q.image else ""
        return repr((q.text, image, q.like, q.filters, self.top_k))


def markdown_text(text: object) -> str:
    """Payload text for Markdown, every Markdown character escaped: shown as the text it is, never as
    a link, an image or markup (Streamlit escapes raw HTML itself)."""
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIAL else c for c in str(text))


def markdown_link(text: str, url: str) -> str:
    """A Markdown link to an http(s) URL from a payload, safe whatever characters either holds;
    anything else is shown as plain, escaped text."""
    escaped = markdown_text(text)
    if not url.lower().startswith(("http://", "https://")):
        return escaped
    return f"[{escaped}](<{url.replace('<', '%3C').replace('>', '%3E').replace(' ', '%20')}>)"


def _service_down(settings: AppSettings, exc: Exception) -> None:
    log.warning("search unavailable: %s", exc)
    if isinstance(exc, EmbeddingUnavailable):
        st.error(
            f"The embedding service at {settings.embedding_service_url} is not answering, so queries cannot be "
            "turned into vectors right now. Searches work again as soon as it is back.",
            icon=":material/cloud_off:",
        )
    else:
        st.error(
            f"The index (Qdrant) is not available: {exc}. Searches work again as soon as it is back.",
            icon=":material/cloud_off:",
        )


def _more_like(sha256: str, path: str) -> None:
    st.session_state["like"] = sha256
    st.session_state["like_path"] = path
    st.session_state["query"] = ""
    st.session_state["uploader_key"] = st.session_state.get("uploader_key", 0) + 1


def _clear_like() -> None:
    st.session_state["like"] = None


def _load_more(settings: AppSettings) -> None:
    st.session_state["shown"] = min(st.session_state["shown"] + settings.app_page_size, settings.app_max_results)


def _sidebar(settings: AppSettings, clients: Clients) -> tuple[Filters, int]:
    with st.sidebar:
        top_k = st.slider("Results", 1, settings.app_max_top_k, settings.app_top_k, key="top_k")
        st.subheader("Filters")
        try:
            domains_known = resources.domain_choices(settings, clients)
        except QdrantUnavailable:
            domains_known = []
        domains = st.multiselect("Source domain", domains_known, key="domains", placeholder="any")
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
    filters = Filters(
        domains=tuple(domains),
        content_types=tuple(formats),
        min_width=int(min_width),
        min_height=int(min_height),
        min_score=float(min_score) or None,
        collapse=NEAR_DUPLICATE_COSINE if collapse else None,
        match_words=words,
    )
    return filters, int(top_k)


@st.dialog("Image", width="large")
def _details(hit: Hit, settings: AppSettings) -> None:
    try:
        st.image(resources.thumbnail_of(settings, hit.path, settings.app_preview_px), alt=hit.url, width="stretch")
    except ThumbnailError as exc:
        st.warning(f"The image cannot be shown: {markdown_text(exc)}")
    kind = markdown_text(FORMAT_LABELS.get(hit.content_type, hit.content_type))
    size = f" · {hit.bytes:,} bytes" if hit.bytes else ""
    st.markdown(f"**Score** {hit.score:.4f} · **{hit.width} × {hit.height}** · {kind}{size}")
    st.markdown("**Sources**\n\n" + "\n".join(f"- {markdown_link(url, url)}" for url in hit.urls))
    st.caption(
        markdown_text(
            f"sha256 {hit.sha256} · downloaded {hit.downloaded_at or '-'} · indexed {hit.indexed_at or '-'} · "
            f"model {hit.model or '-'}"
        )
    )
    st.button("More like this", key=f"dialog_like_{hit.sha256}", on_click=_more_like, args=(hit.sha256, hit.path))


def _card(hit: Hit, settings: AppSettings) -> None:
    try:
        st.image(
            resources.thumbnail_of(settings, hit.path, settings.app_thumbnail_px),
            alt=f"Result {hit.rank}: {hit.url}",
            width="stretch",
        )
    except ThumbnailError:
        st.caption(":material/broken_image: image file missing")
    domain = hit.domains[0] if hit.domains else hit.url
    similar = f" · +{len(hit.similar)} similar" if hit.similar else ""
    st.markdown(f"**#{hit.rank}** · {hit.score:.3f} · {markdown_link(domain, hit.url)}{similar}")
    left, right = st.columns(2)
    if left.button("Details", key=f"details_{hit.sha256}", width="stretch"):
        _details(hit, settings)
    right.button(
        "Similar",
        key=f"like_{hit.sha256}",
        on_click=_more_like,
        args=(hit.sha256, hit.path),
        width="stretch",
        help="More like this",
    )


def _grid(hits: list[Hit], settings: AppSettings) -> None:
    grid = st.grid("auto", min_column_width=max(160, settings.app_thumbnail_px * 3 // 4), key="results")
    for hit in hits:
        with grid.cell():
            _card(hit, settings)


def _query_inputs(settings: AppSettings) -> tuple[str, bytes | None]:
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
        type=["jpg", "jpeg", "png", "webp", "gif"],
        key=f"query_image_{st.session_state.get('uploader_key', 0)}",
        max_upload_size=max(1, settings.max_image_bytes // (1024 * 1024)),
        help="Alone, or with the text: both are combined.",
    )
    return text, upload.getvalue() if upload is not None else None


def _like_banner(settings: AppSettings, sha256: str) -> None:
    box = st.container(border=True, horizontal=True, vertical_alignment="center")
    with box:
        path = st.session_state.get("like_path")
        if path:
            with contextlib.suppress(ThumbnailError):
                st.image(resources.thumbnail_of(settings, path, 64), width=64)
        st.markdown(f"More like image {markdown_text(sha256[:12])}…")
        st.button("Clear", key="clear_like", on_click=_clear_like, icon=":material/close:")


def render() -> None:
    settings = resources.settings()
    st.title("DY Images")
    st.session_state.setdefault("like", None)
    try:
        clients = resources.clients(settings)
    except QdrantUnavailable as exc:
        _service_down(settings, exc)
        return
    filters, top_k = _sidebar(settings, clients)
    text, image = _query_inputs(settings)
    like = st.session_state["like"]
    if like:
        _like_banner(settings, like)
    request = Request(Query(text=text, image=image, like=like, filters=filters), top_k)

    if st.session_state.get("signature") != request.signature:
        st.session_state["signature"] = request.signature
        st.session_state["shown"] = top_k
    shown = st.session_state["shown"]

    try:
        if not text.strip() and request.query.is_empty():
            size = index_size(clients.qdrant, settings.qdrant_collection)
            if not size:
                st.info(EMPTY_INDEX, icon=":material/info:")
            else:
                st.caption(f"{size:,} images indexed. Type a description and press Enter.")
            return
        st.session_state["hits"] = []
        started = time.perf_counter()
        hits = search(
            clients.qdrant,
            settings.qdrant_collection,
            resources.embedder(settings, clients.embedding),
            request.query,
            limit=shown,
            negative_weight=settings.app_negative_weight,
            cache=resources.query_cache(settings),
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not hits and not index_size(clients.qdrant, settings.qdrant_collection):
            raise CollectionMissing(settings.qdrant_collection)
    except CollectionMissing:
        st.info(EMPTY_INDEX, icon=":material/info:")
        return
    except (EmbeddingUnavailable, QdrantUnavailable) as exc:
        _service_down(settings, exc)
        return
    except (QueryError, EmbeddingRequestError) as exc:
        st.warning(str(exc), icon=":material/warning:")
        return
    except IndexMismatch as exc:
        st.error(f"The index cannot answer this model's queries: {exc}", icon=":material/error:")
        return

    st.session_state["hits"] = hits
    if not hits:
        st.info(
            "**No results.** Nothing indexed matches these filters"
            + (f" with a score of at least {filters.min_score:.2f}" if filters.min_score else "")
            + "; remove a filter or a negative term, or lower the minimum score.",
            icon=":material/search_off:",
        )
        return
    negatives = request.query.parsed.negatives
    without = f" · without {', '.join(negatives)}" if negatives else ""
    st.caption(f"{len(hits)} results in {elapsed_ms:.0f} ms{without}", help="Query embedding plus vector search.")
    _grid(hits, settings)
    fetched = len(hits) + sum(len(hit.similar) for hit in hits)  # folded near-duplicates were fetched too
    if fetched == shown and shown < settings.app_max_results:
        st.button("Load more", key="load_more", on_click=_load_more, args=(settings,), icon=":material/expand_more:")
