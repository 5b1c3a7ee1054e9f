"""The app as people use it: `streamlit run` on localhost, driven by headless Chromium.

The expected first result comes from a numpy oracle over the indexed vectors (random model
weights give no meaningful "right" answer; the app is right when it shows the index's own order).
The screenshot and the measured time from Enter to rendered thumbnails are written to artifacts/.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from selenium.webdriver.support.ui import WebDriverWait

from dyimages_common.embeddings.client import EmbeddingClient
from testkit import REPO_ROOT
from testkit.browser import chromium, result_images, search_in_browser, streamlit_app
from testkit.indexed_library import Library

pytestmark = pytest.mark.browser

ARTIFACTS = REPO_ROOT / "artifacts"
QUERY = "a red bicycle leaning on a wall"
THUMBNAIL_PX = 96


def test_typed_query_shows_the_nearest_image_first(library: Library, tmp_path: Path) -> None:
    with EmbeddingClient(library.env["EMBEDDING_SERVICE_URL"]) as client:
        expected = library.nearest(client.embed_texts([QUERY])[0])
    first = library.by_sha(expected[0])
    env = {**library.env, "APP_TOP_K": "8", "APP_THUMBNAIL_PX": str(THUMBNAIL_PX)}
    ARTIFACTS.mkdir(exist_ok=True)
    with streamlit_app(env, tmp_path / "streamlit.log") as url, chromium() as driver:
        seconds = search_in_browser(driver, url, QUERY, expected_results=8)
        images = result_images(driver)
        driver.save_screenshot(str(ARTIFACTS / "browser-search.png"))
        page = driver.page_source
    assert [image["alt"] for image in images] == [
        f"Result {rank}: {library.by_sha(sha).urls[0]}" for rank, sha in enumerate(expected[:8], start=1)
    ]
    assert images[0]["alt"] == f"Result 1: {first.urls[0]}"
    # Thumbnails made on the server: the test images are 64-320 px wide, none may exceed the grid size.
    assert all(0 < image["width"] <= THUMBNAIL_PX for image in images)
    assert "Traceback" not in page
    (ARTIFACTS / "browser-search.json").write_text(
        json.dumps({"query": QUERY, "points": len(library.pictures), "enter_to_rendered_ms": round(seconds * 1000, 1)})
    )


def test_a_bookmarked_search_opens_with_the_same_first_hit(library: Library, tmp_path: Path) -> None:
    """The URL after a search, opened in a fresh browser, shows the same results in the same order."""
    env = {**library.env, "APP_TOP_K": "4", "APP_THUMBNAIL_PX": str(THUMBNAIL_PX)}
    with streamlit_app(env, tmp_path / "streamlit.log") as url:
        with chromium() as driver:
            search_in_browser(driver, url, QUERY, expected_results=4)
            WebDriverWait(driver, 30).until(lambda d: "q=" in d.current_url)
            bookmark, searched = driver.current_url, [image["alt"] for image in result_images(driver)]
        with chromium() as driver:
            driver.get(bookmark)
            WebDriverWait(driver, 60).until(lambda d: len(result_images(d)) >= 4)
            opened = [image["alt"] for image in result_images(driver)]
    assert parse_qs(urlsplit(bookmark).query)["q"] == [QUERY]
    assert opened[0] == searched[0]
    assert opened == searched
