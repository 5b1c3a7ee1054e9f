"""Driving the real app in tests: the Streamlit UI with AppTest (a fresh start, a query image uploaded) and
`dyimages search --json` through typer's runner.

Streamlit's caches live in the process, so each start clears them (and again at the end, which closes the
cached Qdrant client and frees an embedded folder).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

import search_app
from search_app.cli.main import app

APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")


@contextmanager
def running_app(query_params: Mapping[str, str | list[str]] | None = None) -> Iterator[AppTest]:
    """The app after its first run (opened on a URL with ``query_params``, if given), with Streamlit's
    process caches cleared before and after."""
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.query_params.update(query_params or {})
        at.run()
        assert not at.exception, at.exception
        yield at
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()


@contextmanager
def searching_by_image(data: bytes) -> Iterator[AppTest]:
    """The app with ``data`` uploaded as the query image, its results in ``session_state["hits"]``."""
    with running_app() as at:
        uploader = next(u for u in at.file_uploader if u.key.startswith("query_image"))
        uploader.set_value(("query.jpg", data, "image/jpeg")).run()
        assert not at.exception, at.exception
        yield at


def search_json(*args: str) -> dict[str, Any]:
    """`dyimages search ARGS --json`, which must succeed, parsed."""
    result = CliRunner().invoke(app, ["search", *args, "--json"])
    assert result.exit_code == 0, (result.output, result.exception)
    return json.loads(result.stdout)
