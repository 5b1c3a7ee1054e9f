"""The reverse proxy as deployed (deploy/proxy/entrypoint.sh with Debian's real nginx), run as an
unprivileged user as compose runs it; raw HTTP and websocket requests with any Host and Origin; a
local certificate authority (openssl) for certificates of non-local names."""

from __future__ import annotations

import base64
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from testkit import REPO_ROOT
from testkit.indexed_library import PictureSpec
from testkit.procs import free_port, stop, wait_http_ok

ENTRYPOINT = REPO_ROOT / "deploy" / "proxy" / "entrypoint.sh"
USER, PASSWORD = "tester", "correct-horse-battery-7f3a"
NOBODY = ("--reuid=65534", "--regid=65534", "--clear-groups")
PUBLIC_NAME = "photos.example.org"  # a non-local name: nothing resolves it, the tests aim it at 127.0.0.1

# The library the proxy tests index and the app they start over it (tests/proxy/conftest.py).
MiB = 1024 * 1024
MAX_IMAGE_BYTES = 3 * MiB  # above nginx's default body limit (1 MiB), which must not apply to uploads
METRICS_PORT = free_port()  # the app's /metrics
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

    @property
    def access_log(self) -> Path:
        return self.log.parent / "access.log"

    @property
    def run_dir(self) -> Path:
        return self.log.parent / "run"


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


def raw_request(port: int, head: str, *, host: str = "127.0.0.1", timeout: float = 30) -> tuple[socket.socket, bytes]:
    """Send a request head (lines, no final blank line) to ``host:port``; the open socket and what came
    back first."""
    sock = socket.create_connection((host, port), timeout=timeout)
    sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n\r\n")
    return sock, sock.recv(65536)


def websocket_head(host_header: str, origin: str | None, *, authorization: bool = True) -> str:
    """The handshake a browser sends for the UI's websocket, with ``Host`` and ``Origin`` as given."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        "GET /_stcore/stream HTTP/1.1",
        f"Host: {host_header}",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if authorization:
        lines.append("Authorization: Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode())
    return "\n".join(lines)


@dataclass(frozen=True)
class LocalCA:
    """A certificate authority made here, and a server certificate it signed for some names."""

    ca_cert: Path
    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))

    def spki_sha256(self) -> str:
        """The base64 SHA-256 of the server key's SubjectPublicKeyInfo (Chromium's pin format)."""
        der = subprocess.run(
            ["openssl", "pkey", "-in", str(self.key), "-pubout", "-outform", "DER"], capture_output=True, check=True
        ).stdout
        digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=der, capture_output=True, check=True)
        return base64.b64encode(digest.stdout).decode()


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_local_ca(folder: Path, names: tuple[str, ...], *, serial: int = 1) -> LocalCA:
    """A CA and a server certificate for ``names`` (DNS names) under ``folder``, all readable by the
    proxy's unprivileged user. The same folder again re-issues the server certificate (a renewal)."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)
    ca_key, ca_cert = folder / "ca.key", folder / "ca.pem"
    if not ca_cert.exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=DY test CA",
                 "-keyout", str(ca_key), "-out", str(ca_cert))  # fmt: skip
    key, csr, cert = folder / "server.key", folder / "server.csr", folder / "server.pem"
    extensions = folder / "ext.cnf"
    extensions.write_text("subjectAltName=" + ",".join(f"DNS:{name}" for name in names) + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={names[0]}", "-keyout", str(key), "-out", str(csr))
    _openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-set_serial", str(serial),
             "-days", "1", "-extfile", str(extensions), "-out", str(cert))  # fmt: skip
    for path in (ca_cert, key, cert):
        path.chmod(0o644)
    return LocalCA(ca_cert=ca_cert, cert=cert, key=key)


def https_get(
    port: int, server_name: str, path: str, context: ssl.SSLContext, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes, int]:
    """GET over TLS to 127.0.0.1:``port`` as a browser at ``server_name`` would (SNI, certificate
    check, Host): status, headers (lower-case names), body, and the serial of the certificate served."""
    import http.client

    class Connection(http.client.HTTPSConnection):
        def connect(self) -> None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=30)
            self.sock = context.wrap_socket(sock, server_hostname=server_name)

    connection = Connection(server_name, port, context=context, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        body = response.read()
        der = connection.sock.getpeercert(binary_form=True)  # type: ignore[union-attr]
        serial = _serial(der or b"")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body, serial
    finally:
        connection.close()


def _serial(der: bytes) -> int:
    text = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-serial"], input=der, capture_output=True, check=True
    ).stdout.decode()
    return int(text.strip().split("=", 1)[1], 16)
