"""The reverse proxy as deployed: deploy/proxy/entrypoint.sh run as an unprivileged user (as compose
runs it), Debian's real nginx binary, in front of the real Streamlit app over a small indexed library;
headless Chromium searches through it.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from testkit.browser import chromium, result_images, search_in_browser
from testkit.indexed_library import Library
from testkit.proxy import (
    ENTRYPOINT,
    LIBRARY,
    MAX_IMAGE_BYTES,
    METRICS_PORT,
    PASSWORD,
    SCRIPT_URL,
    USER,
    MiB,
    Proxy,
    raw_request,
    require_nginx,
    run_entrypoint,
    websocket_head,
)

pytestmark = pytest.mark.integration

AUTH = httpx.BasicAuth(USER, PASSWORD)


def static_asset(proxy: Proxy) -> str:
    """The path of one of Streamlit's JavaScript bundles, as the page links it."""
    page = httpx.get(f"{proxy.url}/", auth=AUTH).text
    start = page.index("/static/js/")
    return page[start : page.index('"', start)].lstrip(".")


def test_without_the_password_the_proxy_answers_401(proxy) -> None:
    with proxy() as p:
        for path in ("/", "/_stcore/health", "/static/js/x.js", "/_stcore/stream"):
            response = httpx.get(f"{p.url}{path}")
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == 'Basic realm="DY Images"'
        assert httpx.get(f"{p.url}/", auth=httpx.BasicAuth(USER, "wrong-password-123")).status_code == 401
        assert httpx.get(f"{p.url}/healthz").status_code == 200  # the container's healthcheck
        page = httpx.get(f"{p.url}/", auth=AUTH)
        assert page.status_code == 200
        assert "<title>" in page.text
        assert httpx.get(f"{p.url}/_stcore/health", auth=AUTH).text == "ok"


def test_the_password_is_stored_as_a_sha512_crypt_hash(proxy) -> None:
    with proxy() as p:
        run_dir = p.log.parent / "run"
        line = (run_dir / "htpasswd").read_text().strip()
        assert PASSWORD not in (run_dir / "nginx.conf").read_text()
    user, hashed = line.split(":", 1)
    assert user == USER
    assert hashed.startswith("$6$")
    assert PASSWORD not in line


def test_static_files_are_cached_long_and_gzipped(proxy) -> None:
    with proxy() as p:
        path = static_asset(p)
        first = httpx.get(f"{p.url}{path}", auth=AUTH, headers={"Accept-Encoding": "gzip"})
        second = httpx.get(f"{p.url}{path}", auth=AUTH, headers={"Accept-Encoding": "gzip"})
        page = httpx.get(f"{p.url}/", auth=AUTH, headers={"Accept-Encoding": "gzip"})
    assert first.status_code == second.status_code == 200
    assert set(first.headers["cache-control"].split(", ")) == {"public", "immutable", "max-age=31536000"}
    assert first.headers["content-encoding"] == "gzip"
    assert first.headers["x-cache-status"] == "MISS"
    assert second.headers["x-cache-status"] == "HIT"  # the proxy's own copy
    assert second.content == first.content
    assert page.headers["content-encoding"] == "gzip"
    assert "immutable" not in page.headers.get("cache-control", "")  # the page itself is not cached


def test_past_the_rate_uploads_sessions_and_requests_get_429(proxy) -> None:
    with proxy(
        PROXY_UPLOAD_RATE="1r/m", PROXY_UPLOAD_BURST="2", PROXY_SESSION_RATE="1r/m", PROXY_SESSION_BURST="1"
    ) as p:
        uploads = [
            httpx.put(f"{p.url}/_stcore/upload_file/s/f", auth=AUTH, files={"file": ("a.jpg", b"x")}).status_code
            for _ in range(5)
        ]
        sessions = [httpx.get(f"{p.url}/_stcore/stream", auth=AUTH).status_code for _ in range(4)]
        refused = httpx.put(f"{p.url}/_stcore/upload_file/s/f", auth=AUTH, files={"file": ("a.jpg", b"x")})
        page = httpx.get(f"{p.url}/", auth=AUTH)  # other requests have their own, larger allowance
    assert 429 not in uploads[:3]
    assert uploads[3:] == [429, 429]
    assert 429 not in sessions[:2]
    assert sessions[2:] == [429, 429]
    assert "Too many requests" in refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert page.status_code == 200
    with proxy(PROXY_REQUEST_RATE="1r/m", PROXY_REQUEST_BURST="3") as p:
        codes = [httpx.get(f"{p.url}/_stcore/health", auth=AUTH).status_code for _ in range(6)]
        unauthenticated = httpx.get(f"{p.url}/", auth=httpx.BasicAuth(USER, "guessing-password"))
    assert codes == [200] * 4 + [429] * 2
    assert unauthenticated.status_code == 429  # password guessing is limited too


def open_websocket(proxy: Proxy) -> tuple[socket.socket, str]:
    """A UI session: the websocket handshake of /_stcore/stream, with the password; the socket stays open."""
    sock, answer = raw_request(proxy.port, websocket_head(f"127.0.0.1:{proxy.port}", proxy.url))
    return sock, answer.split(b"\r\n", 1)[0].decode()


def test_sessions_open_at_once_are_limited_per_client(proxy) -> None:
    with proxy(PROXY_MAX_SESSIONS="2") as p:
        first, second = open_websocket(p), open_websocket(p)
        third = open_websocket(p)
        third[0].close()
        first[0].close()
        time.sleep(0.5)  # nginx sees the close
        again = open_websocket(p)
        for sock, _ in (second, again):
            sock.close()
    assert first[1] == second[1] == "HTTP/1.1 101 Switching Protocols"
    assert third[1] == "HTTP/1.1 429 Too Many Requests"
    assert again[1] == "HTTP/1.1 101 Switching Protocols"


def test_uploads_above_max_image_bytes_stop_at_the_proxy_and_smaller_ones_need_the_xsrf_token(proxy) -> None:
    with proxy() as p:
        too_big = httpx.put(
            f"{p.url}/_stcore/upload_file/s/f",
            auth=AUTH,
            files={"file": ("big.jpg", b"x" * (MAX_IMAGE_BYTES + 100 * 1024))},
        )
        small = httpx.put(
            f"{p.url}/_stcore/upload_file/s/f", auth=AUTH, files={"file": ("a.jpg", b"x" * (MAX_IMAGE_BYTES - MiB))}
        )
    assert too_big.status_code == 413
    assert "Image too large" in too_big.text
    # Within the limit the app answers: without the XSRF cookie and header Streamlit refuses it.
    assert small.status_code == 403
    assert "xsrf" in small.text.lower()


@pytest.mark.parametrize(
    "password", ["", "short-pw1", "change-me-please-now", "MyPassword-2024!", "an-example-password", "secret-secret-42"]
)
def test_refuses_to_start_with_an_empty_placeholder_or_short_password(password: str, tmp_path: Path) -> None:
    require_nginx()
    tmp_path.chmod(0o777)
    result = run_entrypoint({"PROXY_PASSWORD": password, "PROXY_RUN_DIR": str(tmp_path / "run")})
    assert result.returncode == 2
    assert "PROXY_PASSWORD" in result.stderr
    assert not (tmp_path / "run" / "htpasswd").exists()


def test_refuses_to_run_as_root() -> None:
    result = subprocess.run(
        [str(ENTRYPOINT)], env={"PROXY_PASSWORD": PASSWORD, "PATH": os.environ["PATH"]}, capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "refusing to run as root" in result.stderr


_XSS = "return window.__xss === undefined ? null : String(window.__xss);"


@pytest.mark.browser
def test_a_search_in_chromium_through_the_proxy_renders_results_and_no_payload_html(
    proxy, proxy_library: Library
) -> None:
    """The websocket through nginx with the password; results whose URLs hold HTML show it as text."""
    with proxy() as p:
        with chromium() as driver:
            url = f"http://{USER}:{PASSWORD}@127.0.0.1:{p.port}/"
            search_in_browser(driver, url, "a photo", expected_results=4)
            images = result_images(driver)
            alts = {image["alt"].split(": ", 1)[1] for image in images}
            assert alts == {spec.urls[0] for spec in LIBRARY}  # the alt text holds the raw URL, as text
            assert driver.execute_script(_XSS) is None
            assert not driver.find_elements(By.CSS_SELECTOR, 'img[src="x"]')
            assert not driver.execute_script(
                "return Array.from(document.querySelectorAll('script')).some(s => s.textContent.includes('__xss'))"
            )
            # The details of the image with a <script> URL: its source link is text, with the URL escaped.
            hostile = next(i for i, image in enumerate(images) if "<script>" in image["alt"])
            driver.find_elements(By.XPATH, '//button[.//p[text()="Details"]]')[hostile].click()
            dialog = WebDriverWait(driver, 30).until(
                ec.presence_of_element_located((By.CSS_SELECTOR, '[role="dialog"]'))
            )
            WebDriverWait(driver, 30).until(lambda d: "Sources" in dialog.text)
            assert SCRIPT_URL in dialog.text
            link = dialog.find_element(By.CSS_SELECTOR, 'a[href*="photos.example"]')
            assert link.get_attribute("href").startswith("https://photos.example/%3Cscript%3E")
            assert driver.execute_script(_XSS) is None
        # The app as deployed used the Redis query cache for that search, and counts it on /metrics.
        metrics = httpx.get(f"http://127.0.0.1:{METRICS_PORT}/metrics").text
        assert 'dyimages_app_query_cache_total{kind="results",outcome="miss"} 1.0' in metrics
        # nginx logs a websocket when it closes (the browser is gone now): it went through the proxy.
        access_log = p.access_log
        deadline = time.monotonic() + 10
        while 'GET /_stcore/stream HTTP/1.1" 101' not in access_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 'GET /_stcore/stream HTTP/1.1" 101' in access_log.read_text()
