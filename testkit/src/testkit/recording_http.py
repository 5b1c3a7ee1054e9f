"""A recording stand-in for Qdrant's REST API: an HTTP (or HTTPS) endpoint that writes down what arrives.

No Qdrant server binary can be had on the test machines, so the tests that pin down how our
clients reach the server (scheme, path, the ``api-key`` header) let the real qdrant-client talk
to this instead. It is NOT a Qdrant: it answers every request with one canned, Qdrant-shaped JSON
body (the root with a version, anything under ``/collections`` ``{"result": {"exists": true}, "status": "ok"}``),
enough for qdrant-client's version check and ``collection_exists``; a test may script other answers
(``answer``). What it proves is what the client sent; what a real server would do with it stays
unverified (docs/architecture.md).

    with RecordingEndpoint() as endpoint:                 # plain HTTP on 127.0.0.1
        client = connect_qdrant(settings_pointing_at(endpoint.port))
        client.collection_exists("images")
        assert endpoint.requests[-1].headers["api-key"] == "k"

    with RecordingEndpoint(tls=self_signed(tmp_path)) as endpoint:   # HTTPS, trusted via SSL_CERT_FILE
        ...
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Recorded:
    """One request as it arrived."""

    scheme: str  # "https" when it came over TLS, else "http"
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: Any = None  # the JSON body, parsed (None when there was none)


Answer = Callable[[Recorded], "dict[str, Any] | tuple[int, dict[str, Any]] | None"]


@dataclass(frozen=True)
class TlsFiles:
    cert: Path  # also the CA to trust: the certificate is self-signed
    key: Path


def self_signed(folder: Path, host: str = "127.0.0.1") -> TlsFiles:
    """A self-signed certificate for ``host`` (an IP address), made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("the openssl command is needed to make a test certificate (Debian package openssl)")
    cert, key = folder / "stand-in.crt", folder / "stand-in.key"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}", "-addext", f"subjectAltName=IP:{host}"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return TlsFiles(cert=cert, key=key)


class RecordingEndpoint:
    """Serve on 127.0.0.1 (a free port) in a background thread; :attr:`requests` lists what arrived.

    With ``tls``, the socket speaks TLS only; a client that sends plain HTTP to it, or TLS to the
    plain one, gets no answer and leaves no request behind (:attr:`handshake_errors` counts the
    failed TLS handshakes).
    """

    def __init__(self, tls: TlsFiles | None = None, answer: Answer | None = None) -> None:
        self.tls = tls
        self.answer = answer  # a test's own answers (a dict, or (status, dict)) for some requests; None: canned
        self.requests: list[Recorded] = []
        self.handshake_errors: list[str] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                recorded = Recorded(
                    scheme="https" if endpoint.tls else "http",
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=json.loads(raw) if raw else None,
                )
                endpoint.requests.append(recorded)
                body = endpoint.answer(recorded) if endpoint.answer else None
                status = 200
                if isinstance(body, tuple):  # a scripted answer with its own status: (status, body)
                    status, body = body
                if body is None and "/collections" not in self.path:  # qdrant-client's version check asks the root
                    body = {"title": "recording stand-in (not Qdrant)", "version": "1.19.0"}
                elif body is None:
                    body = {"result": {"exists": True}, "status": "ok", "time": 0.0}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

            def log_message(self, format: str, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that hangs up or speaks the wrong protocol: nothing to record

        self._server = Server(("127.0.0.1", 0), Handler)
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(tls.cert, tls.key)
            self._server.socket = _RecordingTlsSocket.wrap(context, self._server.socket, self.handshake_errors)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def wait_for(self, path: str, timeout: float = 10.0) -> Recorded:
        """The first request for ``path``, waiting for it (qdrant-client checks the version in a thread)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for request in list(self.requests):
                if request.path == path:
                    return request
            time.sleep(0.02)
        raise AssertionError(f"no request for {path} within {timeout} s; got {[r.path for r in self.requests]}")

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    def __enter__(self) -> RecordingEndpoint:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class _RecordingTlsSocket:
    """The listening socket, whose accept() does the TLS handshake and notes the ones that fail."""

    @staticmethod
    def wrap(context: ssl.SSLContext, sock: Any, errors: list[str]) -> Any:
        listening = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        original_accept = listening.accept

        def accept() -> tuple[Any, Any]:
            connection, address = original_accept()
            connection.settimeout(5)
            try:
                connection.do_handshake()
            except (ssl.SSLError, OSError) as exc:
                errors.append(str(exc))
                connection.close()
                raise
            return connection, address

        listening.accept = accept
        return listening
