"""The soak's URL catalog: good images, duplicates, and every kind of bad URL the downloader refuses.

One seeded, deterministic list of routes on the local :class:`testkit.http_server.ImageServer`, the
URL file's lines (with comments, blank lines, repeated URLs and invalid lines mixed in), and what the
pipeline must make of each URL: a stored, indexed image (``good``) or a failure with a reason (``bad``).

Every address is loopback. The refused target is 127.0.0.2 / ::1 while the downloader allows only
127.0.0.1/32, and nothing listens there, so even a broken SSRF guard sends no traffic anywhere else.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

from PIL import Image

from dyimages_common.images.storage import sha256_hex
from testkit.http_server import ImageServer, Route
from testkit.images import encode, gif, jpeg, png, webp

# Limits the soak gives the downloader (and the embedding service): small so the bad cases are cheap.
MAX_IMAGE_BYTES = 1_000_000
DOWNLOAD_TIMEOUT_S = 2.0
SLOW_DELAY_S = 6.0  # > DOWNLOAD_TIMEOUT_S: every try of a slow URL times out

# Bad kinds, each a way the downloader issue says a URL fails. Every kind appears at least once.
BAD_KINDS = (
    "not_found",  # 404
    "server_error",  # 500 forever: retried, then given up
    "html_as_jpeg",  # an HTML page served as image/jpeg
    "truncated_jpeg",
    "decompression_bomb",  # a small PNG of 10,000 x 10,000 pixels
    "over_byte_cap",  # Content-Length over MAX_IMAGE_BYTES
    "over_byte_cap_streamed",  # chunked, no Content-Length: the cap must stop the stream
    "redirect_loop",
    "redirect_to_refused",  # a redirect to 127.0.0.2 (loopback, not allowed)
    "refused_address",  # a URL naming [::1] directly
    "slow",  # answers after the download timeout, every time
)
INVALID_LINES = (
    "not a url at all",
    "ftp://127.0.0.1/image.jpg",
    "http://",
    "javascript:alert(1)",
)


@dataclass(frozen=True)
class CatalogUrl:
    url: str
    kind: str  # "good", "duplicate", "flaky" (good after a transient failure) or one of BAD_KINDS
    sha256: str | None  # the stored image's hash for good URLs

    @property
    def good(self) -> bool:
        return self.sha256 is not None


@dataclass
class Catalog:
    urls: list[CatalogUrl] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)  # the URL file, in order

    @property
    def good(self) -> list[CatalogUrl]:
        return [u for u in self.urls if u.good]

    @property
    def bad(self) -> list[CatalogUrl]:
        return [u for u in self.urls if not u.good]

    @property
    def expected_sha256(self) -> set[str]:
        return {u.sha256 for u in self.urls if u.sha256 is not None}

    @property
    def duplicate_groups(self) -> dict[str, list[str]]:
        """sha256 -> its URLs, for images reached by more than one URL."""
        groups: dict[str, list[str]] = {}
        for u in self.good:
            groups.setdefault(u.sha256, []).append(u.url)  # type: ignore[arg-type]
        return {sha: urls for sha, urls in groups.items() if len(urls) > 1}


def _good_body(seed: int) -> bytes:
    maker = (jpeg, jpeg, jpeg, png, webp, gif)[seed % 6]
    return maker(seed)


@functools.cache
def _decompression_bomb() -> bytes:
    return encode(Image.new("1", (10_000, 10_000)), "PNG")


@functools.cache
def _oversized() -> bytes:
    """A real JPEG padded past the byte cap."""
    return jpeg(3_000_000) + bytes(MAX_IMAGE_BYTES + 100_000)


def _bad_route(kind: str, index: int, server: ImageServer, prefix: str) -> tuple[str, Route | None, str]:
    """(path, route, url) of one bad URL; a None route is simply not served (404)."""
    path = f"{prefix}/bad/{kind}/{index}.jpg"
    refused_port = server.port or 80
    routes: dict[str, Route | None] = {
        "not_found": None,
        "server_error": Route(status=500, body=b"down for good"),
        "html_as_jpeg": Route(body=b"<!doctype html><html><body>not an image</body></html>"),
        "truncated_jpeg": Route(body=jpeg(1_000_000 + index)[:-400]),
        "decompression_bomb": Route(body=_decompression_bomb(), content_type="image/png"),
        "over_byte_cap": Route(body=_oversized()),
        "over_byte_cap_streamed": Route(body=_oversized(), drip=0.00001),
        "redirect_loop": Route(redirect=f"{prefix}/bad/{kind}/{index}-b.jpg"),
        "redirect_to_refused": Route(redirect=f"http://127.0.0.2:{refused_port}/refused/{index}.jpg"),
        "refused_address": None,
        "slow": Route(body=jpeg(2_000_000 + index), delay=SLOW_DELAY_S),
    }
    if kind == "redirect_loop":
        server.add(f"{prefix}/bad/{kind}/{index}-b.jpg", Route(redirect=path))
    if kind == "refused_address":
        return path, None, f"http://[::1]:{refused_port}{path}"
    return path, routes[kind], server.url(path)


def build_catalog(server: ImageServer, count: int, seed: int, prefix: str = "") -> Catalog:
    """Serve ``count`` URLs on ``server`` under ``prefix`` and return the catalog.

    About 85 % good (a few of them flaky: a 503 or a 429 with Retry-After before the image), 5 %
    duplicates (new URLs, bytes of an earlier good image), 10 % bad across every kind; plus
    repeated lines, comments, blank lines and invalid lines in the URL file.
    """
    rng = random.Random(seed)
    catalog = Catalog()
    n_bad = max(len(BAD_KINDS), count // 10)
    n_dup = max(2, count // 20)
    n_good = max(1, count - n_bad - n_dup)

    good_bodies: list[bytes] = []
    for i in range(n_good):
        body = _good_body(seed * 100_000 + i)
        good_bodies.append(body)
        path = f"{prefix}/img/{i}.{('jpg', 'jpg', 'jpg', 'png', 'webp', 'gif')[(seed * 100_000 + i) % 6]}"
        roll = rng.random()
        if roll < 0.03:
            route, kind = Route(body=body, fail_times=1, fail_status=503), "flaky"
        elif roll < 0.04:
            route, kind = Route(body=body, fail_times=1, fail_status=429, retry_after="1"), "flaky"
        else:
            route, kind = Route(body=body), "good"
        catalog.urls.append(CatalogUrl(server.add(path, route), kind, sha256_hex(body)))
    for i in range(n_dup):
        body = good_bodies[rng.randrange(n_good)]
        url = server.add(f"{prefix}/copy/{i}.jpg", Route(body=body))
        catalog.urls.append(CatalogUrl(url, "duplicate", sha256_hex(body)))
    for i in range(n_bad):
        kind = BAD_KINDS[i % len(BAD_KINDS)]
        path, route, url = _bad_route(kind, i, server, prefix)
        if route is not None:
            server.add(path, route)
        catalog.urls.append(CatalogUrl(url, kind, None))

    lines = [u.url for u in catalog.urls]
    rng.shuffle(lines)
    extras = ["# soak URL file: comments, blank lines, repeats and invalid lines are part of the test", ""]
    extras += list(INVALID_LINES)
    extras += [f"  {rng.choice(catalog.urls).url}  " for _ in range(max(2, count // 100))]  # repeated, padded
    for extra in extras:
        lines.insert(rng.randrange(len(lines) + 1), extra)
    catalog.lines = lines
    return catalog
