"""The status page's ingest progress, driven by AppTest against the real services (RabbitMQ, the embedding
service, embedded Qdrant holding images indexed by the real indexer, the downloader's SQLite state)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import search_app
from search_app.ui.progress import REFRESH_S
from testkit.indexed_library import Library, PictureSpec, index_pictures, record_downloads

pytestmark = pytest.mark.integration

APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")
SITE = "https://progress-ui.example"


@pytest.fixture(autouse=True)
def fresh_process_caches() -> Iterator[None]:
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_status_page_shows_pending_downloaded_indexed_with_a_bar_rate_and_eta(
    own_library: Library, tmp_path: Path
) -> None:
    pictures = index_pictures(own_library, [PictureSpec(9401, (f"{SITE}/a.jpg",))], tmp_path / "indexer.log")
    record_downloads(own_library.state_db, pictures, {f"{SITE}/broken.jpg": "http_404: gone"})
    pending = [f"{SITE}/{n}.jpg" for n in range(4)]
    with sqlite3.connect(own_library.state_db) as connection:
        connection.executemany(
            "INSERT INTO urls (url, status, attempts, published, updated_at) VALUES (?, 'pending', 0, 0, 'now')",
            [(url,) for url in pending],
        )

    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.switch_page("status_page.py").run()
    assert not at.exception, at.exception
    shown = metrics(at)
    assert (shown["Pending"], shown["Downloaded"], shown["Indexed"]) == ("4", "1", "1")
    assert shown["ETA"] == "unknown"  # one sample: no rate yet
    bar = at.get("progress")[0]
    assert bar.proto.value == 33  # 2 of 6 URLs finished (1 done, 1 failed)
    assert "2 of 6 URLs downloaded or failed" in bar.proto.text
    assert f"refreshed every {REFRESH_S:.0f} s" in " ".join(c.value for c in at.caption)

    with sqlite3.connect(own_library.state_db) as connection:  # two pending URLs finish before the next refresh
        connection.executemany("UPDATE urls SET status = 'done' WHERE url = ?", [(url,) for url in pending[:2]])
    at.run()
    assert not at.exception, at.exception
    shown = metrics(at)
    assert (shown["Pending"], shown["Downloaded"]) == ("2", "3")
    assert shown["ETA"] != "unknown"  # 2 pending at a measured rate
    assert at.get("progress")[0].proto.value == 66
    assert "downloads - URLs/s" not in " ".join(c.value for c in at.caption)
