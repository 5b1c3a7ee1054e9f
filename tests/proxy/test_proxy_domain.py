"""The proxy on a real domain, behind a CDN and over IPv6: the real nginx (deploy/proxy/entrypoint.sh)
in front of the real app, asked with ``Host``/``Origin`` of a non-local name, as a browser at
https://photos.example.org would (nothing resolves the name: the requests go to 127.0.0.1 with it).

Streamlit accepts the UI's websocket only when its Origin matches the Host it receives (or is
localhost), so a proxy that sends the app another Host (nginx drops the server's proxy_set_header
lines in a location that sets any) leaves a browser on a real domain on "Connecting" for ever.
"""

from __future__ import annotations

import re
import socket
import time

import httpx
import pytest

from testkit.procs import free_port
from testkit.proxy import PASSWORD, PUBLIC_NAME, USER, Proxy, raw_request, running_proxy, websocket_head

pytestmark = pytest.mark.integration

AUTH = httpx.BasicAuth(USER, PASSWORD)
SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "x-frame-options": "SAMEORIGIN",
    "referrer-policy": "same-origin",
}


def _closed_at_once(sock: socket.socket, already: bytes) -> bool:
    """Whether the server sends a websocket close frame (opcode 8) within a second of the upgrade."""
    data = already.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in already else b""
    sock.settimeout(0.2)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        if data and data[0] & 0x0F == 0x8:
            return True
        try:
            chunk = sock.recv(4096)
        except TimeoutError:
            continue
        if not chunk:
            return True
        data += chunk
    return bool(data) and data[0] & 0x0F == 0x8


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        (PUBLIC_NAME, f"https://{PUBLIC_NAME}"),  # port 443 behind a CDN or TLS: no port in either
        (f"{PUBLIC_NAME}:8443", f"https://{PUBLIC_NAME}:8443"),  # a port of its own
        (f"{PUBLIC_NAME}", f"http://{PUBLIC_NAME}"),
    ],
)
def test_the_websocket_of_a_browser_on_a_real_domain_is_upgraded_and_stays_open(proxy, host: str, origin: str) -> None:
    with proxy() as p:
        sock, answer = raw_request(p.port, websocket_head(host, origin))
        try:
            status = answer.split(b"\r\n", 1)[0].decode()
            assert status == "HTTP/1.1 101 Switching Protocols", answer[:300]
            assert not _closed_at_once(sock, answer), "the app closed the websocket: it saw another Host"
        finally:
            sock.close()


def test_a_foreign_origin_is_still_refused_by_the_app(proxy) -> None:
    """The Host passes through unchanged, so the app's own origin check keeps working: a page on
    another site cannot open a session with the visitor's password."""
    with proxy() as p:
        sock, answer = raw_request(p.port, websocket_head(PUBLIC_NAME, "https://evil.example.net"))
        try:
            refused = not answer.startswith(b"HTTP/1.1 101") or _closed_at_once(sock, answer)
        finally:
            sock.close()
    assert refused


def _get(p: Proxy, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{p.url}{path}", auth=AUTH, headers={"Host": PUBLIC_NAME, **headers})


def test_every_location_keeps_the_security_headers(proxy) -> None:
    with proxy() as p:
        page = _get(p, "/")
        start = page.text.index("/static/js/")
        asset = page.text[start : page.text.index('"', start)].lstrip(".")
        answers = {
            "page": page,
            "static": _get(p, asset),
            "static, unknown name": _get(p, "/static/js/no-such-file.js"),
            "health": _get(p, "/_stcore/health"),
            "401": httpx.get(f"{p.url}/", headers={"Host": PUBLIC_NAME}),
            "healthz": httpx.get(f"{p.url}/healthz"),
        }
    for name, answer in answers.items():
        for header, value in SECURITY_HEADERS.items():
            assert answer.headers.get(header) == value, f"{name}: {header}"
        assert "strict-transport-security" not in answer.headers, f"{name}: HSTS only over HTTPS"


def test_static_files_are_immutable_only_when_found(proxy) -> None:
    """Streamlit answers an unknown /static/ name with its page (200, "no-cache"), and nginx an app
    that is down with 502: neither may be kept for a year, by the browser or by the proxy."""
    with proxy() as p:
        missing = _get(p, "/static/js/no-such-file.js")
        again = _get(p, "/static/js/no-such-file.js")
    for answer in (missing, again):
        assert "immutable" not in answer.headers.get("cache-control", "")
    assert again.headers.get("x-cache-status") != "HIT", "the stand-in page is not kept in the proxy's cache"
    with running_proxy(f"127.0.0.1:{free_port()}", PROXY_ALLOW_PLAIN_HTTP="true") as p:  # nothing listens there
        down = _get(p, "/static/js/main.js")
    assert down.status_code == 502
    assert "immutable" not in down.headers.get("cache-control", "")
    assert down.headers.get("x-frame-options") == "SAMEORIGIN"


def _limited_codes(p: Proxy, count: int, **headers: str) -> list[int]:
    return [httpx.get(f"{p.url}/_stcore/health", auth=AUTH, headers=headers).status_code for _ in range(count)]


def test_behind_a_trusted_cdn_each_client_has_its_own_limits(proxy) -> None:
    """The CDN (here 127.0.0.1) names the client in X-Forwarded-For; each client, IPv4 or IPv6, gets
    its own allowance, and the header is believed only from the trusted address."""
    with proxy(PROXY_REQUEST_RATE="1r/m", PROXY_REQUEST_BURST="2", PROXY_TRUSTED_PROXIES="127.0.0.1/32") as p:
        first = _limited_codes(p, 4, **{"X-Forwarded-For": "2001:db8::1"})
        second = _limited_codes(p, 4, **{"X-Forwarded-For": "2001:db8::2"})
        third = _limited_codes(p, 4, **{"X-Forwarded-For": "198.51.100.7"})
        log = p.access_log.read_text()
    assert first == second == third == [200, 200, 200, 429]
    assert re.search(r"^2001:db8::2 ", log, re.M), "nginx logs the client's address, not the CDN's"
    with proxy(PROXY_REQUEST_RATE="1r/m", PROXY_REQUEST_BURST="2") as p:  # no trusted proxy: the header is ignored
        first = _limited_codes(p, 4, **{"X-Forwarded-For": "2001:db8::1"})
        second = _limited_codes(p, 4, **{"X-Forwarded-For": "2001:db8::2"})
    assert first == [200, 200, 200, 429]
    assert second == [429] * 4, "a client cannot escape its limit by naming another address"


def test_ipv6_clients_reach_the_proxy_with_their_own_address(proxy) -> None:
    """nginx listens on IPv6 too (where the machine has it): an IPv6 client is counted by its own
    address, not by that of a relay in front of an IPv4-only listener."""
    with proxy(PROXY_REQUEST_RATE="1r/m", PROXY_REQUEST_BURST="1") as p:
        v4 = [httpx.get(f"{p.url}/_stcore/health", auth=AUTH).status_code for _ in range(3)]
        v6 = [httpx.get(f"http://[::1]:{p.port}/_stcore/health", auth=AUTH).status_code for _ in range(3)]
        log = p.access_log.read_text()
    assert v4 == v6 == [200, 200, 429]
    assert re.search(r"^::1 ", log, re.M)
