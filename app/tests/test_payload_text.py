"""Payload text is shown as text: a point written by another tool, with Markdown and HTML in its fields,
searched and opened in the UI (AppTest, the real embedding service and embedded Qdrant).

What a browser makes of URLs holding HTML is tested through the proxy (tests/proxy, Chromium);
here every other payload field the details view shows.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import search_app
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.store.builds import ensure_serving
from dyimages_common.store.points import point_id
from testkit.indexed_library import COLLECTION, Library
from testkit.stores import raw_points

pytestmark = pytest.mark.integration

APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")
SHA = "ab" * 32
HOSTILE = {
    "content_type": "[click me](https://evil.example/phish)",
    "model": "![tracker](https://evil.example/pixel.png)",
}
NOT_A_DATE = {"downloaded_at": "<img src=x onerror=alert(1)>", "indexed_at": "**bold** `code`"}


def test_payload_fields_reach_the_page_escaped(own_library: Library) -> None:
    with EmbeddingClient(own_library.env["EMBEDDING_SERVICE_URL"]) as embedding:
        vector = embedding.embed_texts(["a hostile payload"])[0]
    index = own_library.open_index()
    ensure_serving(index, dim=len(vector), model="dy-tiny", pretrained="none")
    index.close()
    with raw_points(own_library.qdrant_path, COLLECTION) as client:  # another tool, writing past the point model
        payload = {"sha256": SHA, "path": f"ab/ab/{SHA}.jpg", "url": "https://x.example/a.jpg", "width": 1, "height": 1}
        client.insert(point_id(SHA), vector, payload | HOSTILE | NOT_A_DATE)
    st.cache_resource.clear()
    st.cache_data.clear()
    try:
        at = AppTest.from_file(APP, default_timeout=60)
        at.run()
        at.text_input(key="query").input("a hostile payload").run()
        at.button(key=f"details_{SHA}").click().run()
    finally:
        st.cache_resource.clear()
        st.cache_data.clear()
    assert not at.exception, at.exception
    shown = "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption])
    assert "\\[click me\\]\\(https\\:" in shown
    assert "\\!\\[tracker\\]\\(https\\:" in shown
    for value in HOSTILE.values():
        assert value not in shown  # nowhere unescaped
    for value in NOT_A_DATE.values():  # not dates: read as absent, never shown
        assert value not in shown
    assert "onerror" not in shown
    assert "bold" not in shown
