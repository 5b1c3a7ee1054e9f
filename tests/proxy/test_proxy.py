"""The reverse proxy as deployed: deploy/proxy/entrypoint.sh run as an unprivileged user (as compose
runs it), Debian's real nginx binary, in front of the real Streamlit app over a small indexed library;
headless Chromium searches through it.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from testkit import REPO_ROOT
from testkit.browser import chromium, result_images, search_in_browser, streamlit_app
from testkit.embedding import EmbeddingService
from testkit.indexed_library import Library, PictureSpec, index_pictures, library_env
from testkit.procs import free_port, stop, wait_http_ok
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name

pytestmark = pytest.mark.integration

ENTRYPOINT = REPO_ROOT / "deploy" / "proxy" / "entrypoint.sh"
USER, PASSWORD = "tester", "correct-horse-battery-7f3a"
MiB = 1024 * 1024
MAX_IMAGE_BYTES = 3 * MiB  # above nginx's default body limit (1 MiB), which must not apply to uploads
METRICS_PORT = free_port()  # the app's /metrics
NOBODY = ("--reuid=65534", "--regid=65534", "--clear-groups")
# Payload text a hostile page could put in a URL: it must reach the browser as text, never as HTML.
SCRIPT_URL = "https://photos.example/<script>window.__xss='script'</script>.jpg"
IMG_HOST_URL = "https://<img src=x onerror=\"window.__xss='img'\">/picture.jpg"
LIBRARY = [
    PictureSpec(7301, ("https://photos.example/7301.jpg",)),
    PictureSpec(7302, (SCRIPT_URL,)),
    PictureSpec(7303, (IMG_HOST_URL,)),
    PictureSpec(7304, ("https://photos.example/7304.jpg",)),
]


def require_nginx() -> str:
    """Fail (never skip) when nginx is not installed: these tests need the real binary."""
    path = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if path is None:
        raise RuntimeError("nginx is not installed; `apt-get install nginx` (scripts/test does)")
    return path


@dataclass
class Proxy:
    port: int
    log: Path
    https_port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def https_url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"


def run_entrypoint(env: dict[str, str], *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    """The entrypoint as the unprivileged user, to completion (for start-up refusals and ``-t``)."""
    path_env = {"PATH": f"{os.environ['PATH']}:/usr/sbin"}
    return subprocess.run(
        ["setpriv", *NOBODY, str(ENTRYPOINT), *args],
        env={**path_env, **env},
        capture_output=True,
        text=True,
        timeout=timeout or 30,
        check=False,
    )


@contextlib.contextmanager
def running_proxy(upstream: str, **settings: str) -> Iterator[Proxy]:
    """The proxy in front of ``upstream`` on free ports, with ``settings`` (PROXY_* variables)."""
    require_nginx()
    run_dir = Path(tempfile.mkdtemp(prefix="dy-proxy-"))
    run_dir.chmod(0o777)  # the unprivileged user writes its config, hash and caches under it
    log = run_dir / "proxy.log"
    log.touch(mode=0o666)
    port = free_port()
    env = {
        "PATH": f"{os.environ['PATH']}:/usr/sbin",
        "PROXY_USER": USER,
        "PROXY_PASSWORD": PASSWORD,
        "PROXY_UPSTREAM": upstream,
        "PROXY_HTTP_PORT": str(port),
        "PROXY_RUN_DIR": str(run_dir / "run"),
        # Not /dev/stdout: after setpriv's change of user, /proc/self/fd is not the process's to
        # reopen (a container started as that user can).
        "PROXY_ACCESS_LOG": str(run_dir / "access.log"),
        **settings,
    }
    proxy = Proxy(port=port, log=log)
    if settings.get("PROXY_TLS_CERT"):
        proxy.https_port = int(settings["PROXY_HTTPS_PORT"])
    with log.open("ab") as output:
        process = subprocess.Popen(
            ["setpriv", *NOBODY, str(ENTRYPOINT)],
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        try:
            wait_http_ok(f"{proxy.url}/healthz", timeout=30, process=process)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; proxy log:\n{log.read_text()}") from None
        yield proxy
    finally:
        stop(process)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def proxy_library(
    tmp_path_factory: pytest.TempPathFactory, shared_images_dir: Path, embedding_service: EmbeddingService
) -> Iterator[Library]:
    """Four images indexed by the real indexer; two of them with HTML in their URLs."""
    require_rabbitmq()
    queue = unique_queue_name("proxy")
    tmp = tmp_path_factory.mktemp("proxy-library")
    env = library_env(
        images_dir=shared_images_dir,
        qdrant_path=tmp / "qdrant",
        state_db=tmp / "state.sqlite3",
        queue_env=rabbit_env(queue),
        embedding_url=embedding_service.url,
    )
    library = Library(env=env, images_dir=shared_images_dir, qdrant_path=tmp / "qdrant", state_db=tmp / "state.sqlite3")
    try:
        index_pictures(library, LIBRARY, tmp / "indexer.log")
        yield library
    finally:
        delete_topology(queue)


@pytest.fixture(scope="session")
def app_upstream(proxy_library: Library, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app (``python -m search_app``) over the library, a 3 MiB upload limit; yields host:port."""
    env = {
        **proxy_library.env,
        "APP_TOP_K": "4",
        "APP_THUMBNAIL_PX": "96",
        "MAX_IMAGE_BYTES": str(MAX_IMAGE_BYTES),
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "METRICS_PORT": str(METRICS_PORT),
    }
    with streamlit_app(env, tmp_path_factory.mktemp("proxy-app") / "streamlit.log") as url:
        yield url.removeprefix("http://")


@pytest.fixture
def proxy(app_upstream: str) -> Callable[..., contextlib.AbstractContextManager[Proxy]]:
    """Start a proxy in front of the app: ``with proxy(PROXY_UPLOAD_RATE="1r/m") as p: ...``."""
    return lambda **settings: running_proxy(app_upstream, MAX_IMAGE_BYTES=str(MAX_IMAGE_BYTES), **settings)


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
    assert first.headers["cache-control"] == "public, max-age=31536000, immutable"
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
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
    key = base64.b64encode(os.urandom(16)).decode()
    login = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    sock.sendall(
        f"GET /_stcore/stream HTTP/1.1\r\nHost: 127.0.0.1:{proxy.port}\r\nOrigin: {proxy.url}\r\n"
        f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\nAuthorization: Basic {login}\r\n\r\n".encode()
    )
    status = sock.recv(4096).split(b"\r\n", 1)[0].decode()
    return sock, status


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


def test_tls_with_a_local_certificate(proxy) -> None:
    with tempfile.TemporaryDirectory(prefix="dy-proxy-tls-") as folder:  # readable by the proxy's user
        Path(folder).chmod(0o755)
        check_tls(proxy, Path(folder) / "cert.pem", Path(folder) / "key.pem")


def check_tls(proxy, cert: Path, key: Path) -> None:
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    cert.chmod(0o644)
    key.chmod(0o644)
    https_port = free_port()
    with proxy(PROXY_TLS_CERT=str(cert), PROXY_TLS_KEY=str(key), PROXY_HTTPS_PORT=str(https_port)) as p:
        with httpx.Client(verify=ssl.create_default_context(cafile=str(cert))) as client:
            assert client.get(f"{p.https_url}/").status_code == 401
            secure = client.get(f"{p.https_url}/", auth=AUTH)
        plain = httpx.get(f"{p.url}/", auth=AUTH)
    assert secure.status_code == 200
    assert secure.headers["strict-transport-security"] == "max-age=31536000"
    assert plain.status_code == 308
    assert plain.headers["location"] == f"https://127.0.0.1:{https_port}/"


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
        access_log = p.log.parent / "access.log"
        deadline = time.monotonic() + 10
        while 'GET /_stcore/stream HTTP/1.1" 101' not in access_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 'GET /_stcore/stream HTTP/1.1" 101' in access_log.read_text()
