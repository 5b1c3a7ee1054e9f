"""The Streamlit app as a real server process, driven by Debian's headless Chromium (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from testkit.procs import serving_module

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--window-size=1400,1100",
)
QUERY_BOX = 'input[aria-label="Search images"]'
IDLE_PAGE = '//*[contains(text(), "images indexed")]'


@contextlib.contextmanager
def streamlit_app(env: Mapping[str, str], log_path: Path) -> Iterator[str]:
    """The app as deployed (``python -m search_app``) on 127.0.0.1 and a free port; yields its URL."""
    with serving_module(
        "search_app", env, log_path, health="/_stcore/health", host_var="APP_HOST", port_var="APP_PORT"
    ) as url:
        yield url


@contextlib.contextmanager
def chromium(extra_flags: tuple[str, ...] = ()) -> Iterator[WebDriver]:
    """Headless Chromium; ``extra_flags`` for a test's own needs (a resolver rule for a non-local name,
    a pinned test certificate)."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, *extra_flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


_RESULTS_RENDERED = """
const images = Array.from(document.querySelectorAll('img[alt^="Result "]'));
return images.length >= arguments[0] && images.every(img => img.complete && img.naturalWidth > 0);
"""


def result_images(driver: WebDriver) -> list[dict[str, object]]:
    """The result thumbnails in page order: alt text and the pixel size the server sent."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('img[alt^=\"Result \"]'))"
        ".map(img => ({alt: img.alt, width: img.naturalWidth, height: img.naturalHeight}));"
    )


def search_in_browser(driver: WebDriver, app_url: str, text: str, expected_results: int, timeout: float = 60) -> float:
    """Open a fresh page, type ``text``, press Enter; return seconds from Enter until every one of the
    ``expected_results`` thumbnails is loaded and decoded in the page."""
    driver.get(app_url)
    # The first run of the page is over once it has counted the index: only then type.
    WebDriverWait(driver, timeout).until(ec.presence_of_element_located((By.XPATH, IDLE_PAGE)))
    box = WebDriverWait(driver, timeout).until(ec.element_to_be_clickable((By.CSS_SELECTOR, QUERY_BOX)))
    box.send_keys(text)
    started = time.perf_counter()
    box.send_keys(Keys.ENTER)
    WebDriverWait(driver, timeout, poll_frequency=0.01).until(
        lambda d: d.execute_script(_RESULTS_RENDERED, expected_results)
    )
    return time.perf_counter() - started
