"""The status page's ingest progress: pending → downloaded → indexed, a bar, rates and an ETA.

A Streamlit fragment that reruns itself every :data:`REFRESH_S` seconds (only it, not the page), keeping
its samples in the session so the rates cover the last minute or so (:mod:`search_app.ops.progress`, the same
arithmetic as ``dyimages stats --watch``).
"""

from __future__ import annotations

import time

import streamlit as st

from dyimages_common.store.errors import StoreUnavailable
from search_app.ops.progress import IngestSample, ProgressTracker, duration
from search_app.ops.status import collect_status
from search_app.ui import resources

REFRESH_S = 5.0
TRACKER_KEY = "ingest_progress"


def _rate(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.1f} {unit}/s"


@st.fragment(run_every=REFRESH_S)
def render_ingest_progress() -> None:
    """Sample the status now and show the progress over the samples this session has kept."""
    settings = resources.settings()
    try:
        clients = resources.clients(settings)
        status = collect_status(clients.index, clients.embedding, settings)
    except StoreUnavailable:
        st.caption("Ingest progress shows again once the index (Qdrant) answers.")
        return
    tracker: ProgressTracker = st.session_state.setdefault(TRACKER_KEY, ProgressTracker())
    progress = tracker.add(IngestSample.from_status(status, time.monotonic()))
    sample = progress.sample
    st.subheader("Ingest")
    st.progress(
        progress.downloaded_fraction,
        text=f"{sample.finished:,} of {sample.total:,} URLs downloaded or failed",
    )
    cols = st.columns(4)
    cols[0].metric("Pending", f"{sample.pending:,}")
    cols[1].metric("Downloaded", f"{sample.downloaded:,}")
    cols[2].metric("Indexed", f"{sample.indexed:,}")
    cols[3].metric("ETA", duration(progress.eta_s))
    st.caption(
        f"downloads {_rate(progress.download_rate, 'URLs')} · indexing {_rate(progress.index_rate, 'images')} · "
        f"refreshed every {REFRESH_S:.0f} s"
    )
