"""Page script: the status page. Images indexed, queue depth, model and device, recent failures with reasons.

Streamlit's navigation (``streamlit_app.py``) registers this file by name; what it shows is collected
in :mod:`search_app.ops.status`, shared with ``dyimages stats``.
"""

from __future__ import annotations

import streamlit as st

from dyimages_common import version
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.reasons import Reason
from dyimages_common.store.errors import StoreUnavailable
from dyimages_common.urls.refetch import failure_reason
from search_app.ops.failures import RABBIT_ERRORS, Failures, NothingToRetry, collect_failures, request_retry
from search_app.ops.status import collect_status
from search_app.settings import AppSettings
from search_app.ui import resources
from search_app.ui.progress import render_ingest_progress


def _number(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def render() -> None:
    settings = resources.settings()
    st.title("Status")
    st.caption(f"DY Images {version()}")
    st.button("Refresh", icon=":material/refresh:", key="refresh")
    with st.spinner("Asking the services…"):
        try:
            clients = resources.clients(settings)
            status = collect_status(clients.index, clients.embedding, settings)
        except StoreUnavailable as exc:  # the other parts can still be read
            with EmbeddingClient(settings.embedding_service_url, timeout=settings.embedding_timeout_s) as embedding:
                status = collect_status(None, embedding, settings, qdrant_error=str(exc))
        failures = collect_failures(settings, limit=50)

    index, emb, queue, urls = status.index, status.embedding, status.queue, status.urls
    cols = st.columns(4)
    indexed = "unknown" if index.error else _number(index.points) if index.exists else "0"
    cols[0].metric("Images indexed", indexed)
    cols[1].metric("Waiting in queue", _number(queue.queued))
    cols[2].metric("Dead-lettered", _number(queue.dead_lettered))
    cols[3].metric("URLs failed", _number(urls.counts.get("failed")))
    render_ingest_progress()

    st.subheader("Model")
    if emb.error:
        st.error(f"The embedding service at {emb.url} is not answering.", icon=":material/cloud_off:")
    else:
        st.markdown(f"**{emb.model}** ({emb.pretrained}) · dim {emb.dim} · device **{emb.device}**")
    built_with = (index.model, index.weights or emb.pretrained)
    if index.exists and index.model and emb.model and built_with != (emb.model, emb.pretrained):
        st.warning(
            f"The index was built with {index.model} ({index.weights or '?'}), the service runs {emb.model} "
            f"({emb.pretrained}): reindex (`dyimages drop --yes`, restart the indexer, `dyimages reindex`)."
        )
    st.caption(
        f"Collection `{index.collection}`: model {index.model or '-'} ({index.weights or '-'}), dim {index.dim or '-'}"
    )

    st.subheader("Downloader")
    st.markdown(" · ".join(f"{name} **{count:,}**" for name, count in urls.counts.items()) or "-")

    for part in (index.error, queue.error, urls.error):
        if part:
            st.error(part, icon=":material/error:")

    st.subheader("Recent failures")
    if failures.downloads:
        st.dataframe(failures.download_rows(), hide_index=True, key="download_failures")
    else:
        st.caption("No failed downloads.")
    if failures.library:
        st.dataframe(failures.library_rows(), hide_index=True, key="library_failures")
    if failures.downloads or failures.library:
        _retry_controls(settings, failures)
    if failures.dead_letters:
        st.dataframe(
            [{k: v for k, v in d.to_json().items() if k != "body"} for d in failures.dead_letters],
            hide_index=True,
            key="dead_letters",
        )
    else:
        st.caption("No dead-lettered messages.")
    for error in failures.errors:
        st.error(error, icon=":material/error:")


ALL_FAILED = "every failed URL"


def _with_explanation(choice: str) -> str:
    """A retry choice as the selectbox shows it: the reason word and what it means."""
    return choice if choice == ALL_FAILED else f"{choice}: {Reason(choice).explanation}"


def _retry_controls(settings: AppSettings, failures: Failures) -> None:
    """The `dyimages retry` request as a button: every failed URL, or those failed with one reason."""
    reasons = sorted({failure_reason(f.reason).value for f in [*failures.downloads, *failures.library]})
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    choice = left.selectbox(
        "Fetch failed downloads again", [ALL_FAILED, *reasons], format_func=_with_explanation, key="retry_reason"
    )
    if not right.button("Retry", icon=":material/replay:", key="retry"):
        return
    try:
        outcome = request_retry(settings, reason=None if choice == ALL_FAILED else choice, requested_by="app")
    except NothingToRetry as exc:
        st.info(str(exc))
    except RABBIT_ERRORS as exc:
        st.error(f"RabbitMQ is not answering ({exc!r}): nothing was retried.", icon=":material/error:")
    else:
        count = "the" if outcome.matching is None else str(len(outcome.matching))
        files = f" and to read {len(outcome.matching_paths)} photo library file(s)" if outcome.matching_paths else ""
        st.success(
            f"Asked the downloader to fetch {count} failed URL(s) again{files}; press Refresh in a few seconds.",
            icon=":material/replay:",
        )


render()
