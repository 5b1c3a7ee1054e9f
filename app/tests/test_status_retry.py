"""The status page for a refused address: it names the setting that would allow it, and its Retry button
gets the URL fetched once the network is allowed — a real downloader process, the real RabbitMQ,
the page driven by Streamlit's AppTest.

This is the path a self-hoster took: an image server on the LAN is refused by the SSRF guard, they
allow its network and restart the downloader, and the URL must not stay failed for ever.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

import search_app
from testkit.downloader_state import downloader_env, url_row, wait_for_log, wait_for_row
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import free_port, start_module, stop
from testkit.rabbit import rabbit_env

pytestmark = pytest.mark.integration

APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")
QUICK = {"DOWNLOADER_POLL_S": "0.1", "DOWNLOADER_BROKER_RETRY_MAX_S": "0.5", "DOWNLOADER_SHUTDOWN_GRACE_S": "2"}


@pytest.fixture(autouse=True)
def fresh_process_caches() -> Iterator[None]:
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


def test_a_refused_address_names_its_setting_and_the_retry_button_fetches_it_once_allowed(
    tmp_path: Path, rabbit_queue: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ImageServer(host="127.0.0.2") as lan_server:
        url = lan_server.add("/holiday.jpg", Route(body=jpeg(5)))
        env, state_db = downloader_env(
            tmp_path, rabbit_queue, [url], **QUICK, DOWNLOADER_ALLOWED_NETWORKS="127.0.0.1/32"
        )
        log = tmp_path / "downloader.log"
        downloader = start_module("downloader", env=env, log_path=log)
        try:
            wait_for_row(state_db, url, lambda r: r.status == "failed", "the refusal", process=downloader)
        finally:
            assert stop(downloader) == 0
        # What the hint says to do: allow the network, restart. The URL stays failed by itself.
        allowed = {**env, "DOWNLOADER_ALLOWED_NETWORKS": "127.0.0.1/32,127.0.0.2/32"}
        downloader = start_module("downloader", env=allowed, log_path=log)
        try:
            wait_for_log(log, "taking retry requests from")
            assert url_row(state_db, url).status == "failed"

            for key, value in {
                **rabbit_env(rabbit_queue),
                "IMAGES_DIR": str(tmp_path / "images"),
                "QDRANT_PATH": str(tmp_path / "qdrant"),
                "EMBEDDING_SERVICE_URL": f"http://127.0.0.1:{free_port()}",  # down: that part says so
            }.items():
                monkeypatch.setenv(key, value)
            at = AppTest.from_file(APP, default_timeout=60)
            at.run()
            at.switch_page("status_page.py").run()
            assert not at.exception, at.exception
            rows = at.dataframe[0].value.to_dict("records")  # the failed downloads (no dead letters here)
            assert [row["url"] for row in rows] == [url]
            assert rows[0]["reason"].startswith("refused_address: 127.0.0.2")
            assert "add 127.0.0.2/32 to DOWNLOADER_ALLOWED_NETWORKS" in rows[0]["hint"]

            at.selectbox(key="retry_reason").select("refused_address").run()
            at.button(key="retry").click().run()
            assert not at.exception, at.exception
            assert any("fetch 1 failed URL(s) again" in message.value for message in at.success), at.main
            done = wait_for_row(state_db, url, lambda r: r.status == "done", "the retried URL", process=downloader)
            assert done.attempts == 1
            assert lan_server.hits["/holiday.jpg"] == 1
        finally:
            assert stop(downloader) == 0
