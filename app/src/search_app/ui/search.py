"""The search page: runs the query the inputs describe and shows the results, an empty index, or what
is down. The inputs live in :mod:`search_app.ui.controls`, the result grid in :mod:`search_app.ui.results`."""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass

import streamlit as st

from dyimages_common.embeddings.client import EmbeddingRequestError, EmbeddingUnavailable
from dyimages_common.store.errors import CollectionMissing, StoreUnavailable
from search_app.search.engine import index_size, search
from search_app.search.model import Query
from search_app.search.vectors import IndexMismatch, QueryError
from search_app.settings import AppSettings
from search_app.ui import bookmark, resources
from search_app.ui.controls import like_banner, query_inputs, sidebar
from search_app.ui.results import result_grid

log = logging.getLogger(__name__)

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


def _load_more(settings: AppSettings) -> None:
    st.session_state["shown"] = min(st.session_state["shown"] + settings.app_page_size, settings.app_max_results)


def render() -> None:
    settings = resources.settings()
    st.title("DY Images")
    st.session_state.setdefault("like", None)
    try:
        clients = resources.clients(settings)
    except StoreUnavailable as exc:
        _service_down(settings, exc)
        return
    bookmark.restore(settings, clients)
    filters, top_k = sidebar(settings, clients)
    text, image = query_inputs(settings)
    like = st.session_state["like"]
    if like:
        like_banner(settings, like)
    request = Request(Query(text=text, image=image, like=like, filters=filters), top_k)

    if st.session_state.get("signature") != request.signature:
        st.session_state["signature"] = request.signature
        st.session_state["shown"] = st.session_state.pop("bookmark_shown", top_k)
    shown = st.session_state["shown"]
    bookmark.save(text, like, filters, top_k, shown)

    try:
        if not text.strip() and request.query.is_empty() and not request.query.is_browse():
            size = index_size(clients.index)
            if not size:
                st.info(EMPTY_INDEX, icon=":material/info:")
            else:
                st.caption(f"{size:,} images indexed. Type a description and press Enter, or pick an order to browse.")
            return
        st.session_state["hits"] = []
        started = time.perf_counter()
        hits = search(
            clients.index,
            resources.embedder(settings, clients.embedding),
            request.query,
            limit=shown,
            negative_weight=settings.app_negative_weight,
            cache=resources.query_cache(settings),
        )
        elapsed_ms = (time.perf_counter() - started) * 1000
        if not hits and not index_size(clients.index):
            raise CollectionMissing(settings.qdrant_collection)
    except CollectionMissing:
        st.info(EMPTY_INDEX, icon=":material/info:")
        return
    except (EmbeddingUnavailable, StoreUnavailable) as exc:
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
    result_grid(hits, settings, scored=not request.query.is_browse())
    fetched = len(hits) + sum(len(hit.similar) for hit in hits)  # folded near-duplicates were fetched too
    if fetched == shown and shown < settings.app_max_results:
        st.button("Load more", key="load_more", on_click=_load_more, args=(settings,), icon=":material/expand_more:")
