"""An error the app does not catch never shows its details to the person in the browser.

Streamlit's default shows an uncaught exception's message, type and traceback on the page. The app's
launch (:func:`search_app.__main__.streamlit_command`) turns that off; this test serves a page that
raises through exactly those flags (only the script differs: the app itself catches what it knows)
with the real Streamlit server, and reads what headless Chromium shows.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from search_app.__main__ import streamlit_command
from search_app.settings import AppSettings
from testkit.browser import chromium
from testkit.procs import free_port, stop, wait_http_ok

pytestmark = pytest.mark.browser

SECRET = "secret-detail-7f3a"
FAILING_PAGE = f"""
import streamlit as st

st.title("before the error")
raise RuntimeError("{SECRET}: /srv/private/path")
"""


def test_an_uncaught_error_shows_a_generic_line_and_no_message_type_or_traceback(tmp_path: Path) -> None:
    script = tmp_path / "failing_page.py"
    script.write_text(FAILING_PAGE)
    port = free_port()
    command = streamlit_command(AppSettings(app_host="127.0.0.1", app_port=port))
    command[4] = str(script)
    log = tmp_path / "streamlit.log"
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/_stcore/health", timeout=120, process=process)
        with chromium() as driver:
            driver.get(f"http://127.0.0.1:{port}/")
            WebDriverWait(driver, 60).until(
                ec.presence_of_element_located((By.XPATH, '//*[contains(text(), "has encountered an error")]'))
            )
            page = driver.find_element(By.TAG_NAME, "body").text
    finally:
        stop(process)
    assert "before the error" in page  # the page ran up to the error
    assert SECRET not in page
    assert "RuntimeError" not in page
    assert "Traceback" not in page
    assert "failing_page.py" not in page
    assert SECRET in log.read_text()  # the details went to the log, for the operator
