"""HTTPS as a self-hoster turns it on (docs/going-public.md): the real nginx with a certificate for
photos.example.org from a certificate authority made here (openssl), asked under that name (SNI,
certificate check and Host all say photos.example.org; the connection goes to 127.0.0.1).

The certificate's life: before it exists, HTTP serves ACME HTTP-01 challenges and a page saying HTTPS
is not set up, never the password prompt (unless PROXY_ALLOW_PLAIN_HTTP=true); once it is there, HTTP
redirects to the public HTTPS port; a renewed certificate is served without a restart.
"""

from __future__ import annotations

import base64
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.browser import chromium, result_images, search_in_browser
from testkit.procs import free_port
from testkit.proxy import LIBRARY, PASSWORD, PUBLIC_NAME, USER, LocalCA, Proxy, https_get, make_local_ca

pytestmark = pytest.mark.integration

BASIC = {"Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}


@pytest.fixture
def tmp_path() -> Iterator[Path]:
    """A folder the proxy's unprivileged user can read (pytest's own sits under a 0700 folder)."""
    folder = Path(tempfile.mkdtemp(prefix="dy-proxy-tls-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def _tls_settings(ca: LocalCA, https_port: int, **more: str) -> dict[str, str]:
    return {
        "PROXY_TLS_CERT": str(ca.cert),
        "PROXY_TLS_KEY": str(ca.key),
        "PROXY_HTTPS_PORT": str(https_port),
        "PROXY_DOMAIN": PUBLIC_NAME,
        "PROXY_ALLOW_PLAIN_HTTP": "false",
        **more,
    }


def _acme_token(acme: Path) -> tuple[str, str]:
    """A challenge file as certbot --webroot writes it, readable by the proxy's user."""
    folder = acme / ".well-known" / "acme-challenge"
    folder.mkdir(parents=True, exist_ok=True)
    for path in (acme, acme / ".well-known", folder):
        path.chmod(0o755)
    token, content = "tok-3f9a", "tok-3f9a.key-authorisation"
    (folder / token).write_text(content)
    (folder / token).chmod(0o644)
    return token, content


def _plain(p: Proxy, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{p.url}{path}", headers={"Host": PUBLIC_NAME, **headers})


def test_https_for_a_real_name_redirects_http_to_the_public_port_and_exempts_acme(proxy, tmp_path: Path) -> None:
    ca = make_local_ca(tmp_path / "ca", (PUBLIC_NAME,))
    token, content = _acme_token(tmp_path / "acme")
    https_port = free_port()
    settings = _tls_settings(ca, https_port, PROXY_ACME_DIR=str(tmp_path / "acme"))
    with proxy(**settings) as p:
        refused = https_get(https_port, PUBLIC_NAME, "/", ca.client_context())
        status, headers, body, _ = https_get(https_port, PUBLIC_NAME, "/", ca.client_context(), BASIC)
        redirect = _plain(p, "/search?q=1", **BASIC)
        challenge = _plain(p, f"/.well-known/acme-challenge/{token}")
    with proxy(**settings, PROXY_PUBLIC_HTTPS_PORT="8443") as p:
        elsewhere = _plain(p, "/")
    assert refused[0] == 401
    assert status == 200
    assert b"<title>" in body
    assert headers["strict-transport-security"] == "max-age=31536000"
    assert headers["x-frame-options"] == "SAMEORIGIN"
    # Compose publishes 443 (PROXY_PUBLISH_HTTPS) for the container's 8443: the redirect names the public port.
    assert redirect.status_code == 308
    assert redirect.headers["location"] == f"https://{PUBLIC_NAME}/search?q=1"
    assert elsewhere.headers["location"] == f"https://{PUBLIC_NAME}:8443/"
    # The ACME HTTP-01 challenge is answered on plain HTTP, without the password or a redirect.
    assert challenge.status_code == 200
    assert challenge.text == content


def test_without_a_certificate_the_password_is_never_asked_for_in_plain_http(proxy, tmp_path: Path) -> None:
    token, content = _acme_token(tmp_path / "acme")
    with proxy(PROXY_ALLOW_PLAIN_HTTP="false", PROXY_ACME_DIR=str(tmp_path / "acme")) as p:
        page = _plain(p, "/")
        with_password = _plain(p, "/", **BASIC)
        challenge = _plain(p, f"/.well-known/acme-challenge/{token}")
        log = p.log.read_text()
    assert page.status_code == with_password.status_code == 503
    assert "www-authenticate" not in page.headers
    assert "HTTPS is not set up yet" in page.text
    assert challenge.text == content
    assert "PROXY_ALLOW_PLAIN_HTTP=true" in log
    with proxy(PROXY_ALLOW_PLAIN_HTTP="true") as p:  # explicitly allowed: the UI, with a warning
        allowed = _plain(p, "/", **BASIC)
        log = p.log.read_text()
    assert allowed.status_code == 200
    assert "WARNING" in log
    assert "plain HTTP" in log


def test_a_certificate_that_appears_or_is_renewed_is_served_without_a_restart(proxy, tmp_path: Path) -> None:
    """certbot's first issue, then a renewal: the proxy checks the files every PROXY_TLS_CHECK_S and
    reloads nginx (no restart, no dropped port)."""
    https_port = free_port()
    tls = tmp_path / "tls"
    tls.mkdir(mode=0o755)
    tls.chmod(0o755)
    cert, key = tls / "fullchain.pem", tls / "privkey.pem"
    settings = {"PROXY_TLS_CERT": str(cert), "PROXY_TLS_KEY": str(key), "PROXY_HTTPS_PORT": str(https_port)}
    with proxy(**settings, PROXY_ALLOW_PLAIN_HTTP="false", PROXY_TLS_CHECK_S="1") as p:
        assert _plain(p, "/").status_code == 503  # waiting for the certificate
        first = make_local_ca(tmp_path / "ca", (PUBLIC_NAME,), serial=101)
        key.write_bytes(first.key.read_bytes())
        cert.write_bytes(first.cert.read_bytes())
        served = _wait_for_serial(https_port, first, 101)
        assert _wait_for_plain_status(p, 308) == 308
        renewed = make_local_ca(tmp_path / "ca", (PUBLIC_NAME,), serial=102)
        key.write_bytes(renewed.key.read_bytes())
        cert.write_bytes(renewed.cert.read_bytes())
        served_after = _wait_for_serial(https_port, renewed, 102)
        log = p.log.read_text()
    assert (served, served_after) == (101, 102)
    assert log.count("nginx reloaded") == 2


def _wait_for_plain_status(p: Proxy, status: int, timeout: float = 10) -> int:
    """nginx's reload is graceful: an old worker may still answer plain HTTP with the old configuration for
    a moment after a new one serves the certificate, so the redirect is waited for, not sampled once."""
    deadline = time.monotonic() + timeout
    seen = _plain(p, "/").status_code
    while seen != status and time.monotonic() < deadline:
        time.sleep(0.2)
        seen = _plain(p, "/").status_code
    return seen


def _wait_for_serial(port: int, ca: LocalCA, serial: int, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        try:
            seen = https_get(port, PUBLIC_NAME, "/healthz", ca.client_context())[3]
        except OSError:
            seen = None
        if seen == serial:
            return seen
        time.sleep(0.3)
    raise AssertionError(f"certificate {serial} not served within {timeout} s (last: {seen})")


@pytest.mark.browser
def test_chromium_on_the_real_name_over_https_renders_a_search(proxy, tmp_path: Path) -> None:
    """A browser at https://photos.example.org: the name is mapped to 127.0.0.1 inside Chromium (no
    /etc/hosts), the local CA's certificate is trusted by its key's pin, and the UI's websocket goes
    through nginx over TLS with Origin and Host of that name."""
    ca = make_local_ca(tmp_path / "ca", (PUBLIC_NAME,))
    https_port = free_port()
    flags = (
        f"--host-resolver-rules=MAP {PUBLIC_NAME} 127.0.0.1",
        f"--ignore-certificate-errors-spki-list={ca.spki_sha256()}",
    )
    with proxy(**_tls_settings(ca, https_port)) as p:
        with chromium(extra_flags=flags) as driver:
            url = f"https://{USER}:{PASSWORD}@{PUBLIC_NAME}:{https_port}/"
            search_in_browser(driver, url, "a photo", expected_results=len(LIBRARY), timeout=90)
            shown = result_images(driver)
            assert driver.execute_script("return location.hostname") == PUBLIC_NAME
        assert len(shown) == len(LIBRARY)
        assert all(image["width"] > 0 for image in shown)
        deadline = time.monotonic() + 10
        while 'GET /_stcore/stream HTTP/1.1" 101' not in p.access_log.read_text() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 'GET /_stcore/stream HTTP/1.1" 101' in p.access_log.read_text()
