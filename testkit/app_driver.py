"""Driving the real Streamlit app with AppTest: a fresh start with a query image uploaded.

Streamlit's caches live in the process, so each start clears them (and again at the end, which closes the
cached Qdrant client and frees an embedded folder).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

import search_app

APP = str(Path(search_app.__file__).parent / "streamlit_app.py")


@contextmanager
def searching_by_image(data: bytes) -> Iterator[AppTest]:
    """The app with ``data`` uploaded as the query image, its results in ``session_state["hits"]``."""
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        uploader = next(u for u in at.file_uploader if u.key.startswith("query_image"))
        uploader.set_value(("query.jpg", data, "image/jpeg")).run()
        assert not at.exception, at.exception
        yield at
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
