"""The SSRF guard.

Connection tests use loopback addresses only as refused targets (127.0.0.2, ::1, and the name
``localhost``), each with a server listening there that would hand out an image, so a guard that
let the request through would show up in the server's hit counter. The classification tests at the
top only look at addresses; they send nothing anywhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable, Iterator

import aiohttp
import pytest

from downloader.fetch import Fetcher, FetchFailed
from downloader.guard import AddressPolicy, guarded_connector, why_refused
from dyimages_common.settings import parse_networks
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg

IMAGE = jpeg(1)


@pytest.mark.unit
@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "127.0.0.2",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:10.0.0.1",
        "2002:7f00:1::",  # 6to4 of 127.0.0.1
    ],
)
def test_non_public_addresses_are_refused(address: str) -> None:
    assert why_refused(ipaddress.ip_address(address)) is not None
    assert AddressPolicy().refusal(address) is not None


@pytest.mark.unit
@pytest.mark.parametrize("address", ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8"])
def test_public_addresses_pass(address: str) -> None:
    assert AddressPolicy().refusal(address) is None


@pytest.mark.unit
def test_allowed_networks_open_only_their_range() -> None:
    policy = AddressPolicy(parse_networks("127.0.0.1/32"))
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None  # the same address, IPv4-mapped
    assert "loopback" in (policy.refusal("127.0.0.2") or "")
    assert "loopback" in (policy.refusal("::1") or "")


@pytest.fixture
def loopback_servers() -> Iterator[dict[str, ImageServer]]:
    with ImageServer() as allowed, ImageServer(host="127.0.0.2") as other, ImageServer(host="::1") as v6:
        for server in (allowed, other, v6):
            server.add("/image.jpg", Route(body=IMAGE))
        yield {"allowed": allowed, "other": other, "v6": v6}


@pytest.fixture
async def fetch_with() -> AsyncIterator[Callable[[str, str], object]]:
    sessions: list[aiohttp.ClientSession] = []

    async def fetch(allowed: str, url: str) -> bytes:
        connector = guarded_connector(AddressPolicy(parse_networks(allowed)), limit=4, limit_per_host=4)
        session = aiohttp.ClientSession(connector=connector)
        sessions.append(session)
        fetcher = Fetcher(session, max_bytes=1_000_000, max_redirects=3, timeout_s=5)
        return (await fetcher.fetch(url)).data

    yield fetch
    for session in sessions:
        await session.close()


@pytest.mark.integration
@pytest.mark.parametrize(
    ("target", "shown"),
    [("other", "127.0.0.2 is loopback"), ("v6", "::1 is loopback")],
)
async def test_literal_loopback_addresses_are_refused_at_connect(
    loopback_servers: dict[str, ImageServer], fetch_with: Callable[..., object], target: str, shown: str
) -> None:
    server = loopback_servers[target]
    with pytest.raises(FetchFailed) as failure:
        await fetch_with("127.0.0.1/32", server.url("/image.jpg"))
    assert (failure.value.reason, failure.value.transient) == ("refused_address", False)
    assert shown in failure.value.detail
    assert server.hits["/image.jpg"] == 0
    # The control: with its range allowed, the same request does reach that server.
    assert await fetch_with("127.0.0.0/8,::1/128", server.url("/image.jpg")) == IMAGE
    assert server.hits["/image.jpg"] == 1


@pytest.mark.integration
async def test_a_name_is_checked_after_resolving(
    loopback_servers: dict[str, ImageServer], fetch_with: Callable[..., object]
) -> None:
    allowed = loopback_servers["allowed"]
    url = f"http://localhost:{allowed.port}/image.jpg"
    with pytest.raises(FetchFailed) as failure:
        await fetch_with("", url)
    assert failure.value.reason == "refused_address"
    assert allowed.hits["/image.jpg"] == 0
    # localhost is 127.0.0.1 and ::1: with only 127.0.0.1 allowed, ::1 is dropped and 127.0.0.1 used.
    assert await fetch_with("127.0.0.1/32", url) == IMAGE


@pytest.mark.integration
async def test_every_redirect_hop_is_checked(
    loopback_servers: dict[str, ImageServer], fetch_with: Callable[..., object]
) -> None:
    allowed, other = loopback_servers["allowed"], loopback_servers["other"]
    allowed.add("/hop", Route(redirect=allowed.url("/to-other")))
    allowed.add("/to-other", Route(redirect=other.url("/image.jpg")))
    with pytest.raises(FetchFailed) as failure:
        await fetch_with("127.0.0.1/32", allowed.url("/hop"))
    assert failure.value.reason == "refused_address"
    assert allowed.hits["/to-other"] == 1
    assert other.hits["/image.jpg"] == 0


@pytest.mark.integration
@pytest.mark.parametrize("host", ["2130706434", "127.2", "0x7f.0.0.2"])
async def test_legacy_numeric_forms_of_a_refused_address_get_nowhere(
    loopback_servers: dict[str, ImageServer], fetch_with: Callable[..., object], host: str
) -> None:
    other = loopback_servers["other"]  # listens on 127.0.0.2, which all these forms spell
    with pytest.raises(FetchFailed) as failure:
        await fetch_with("127.0.0.1/32", f"http://{host}:{other.port}/image.jpg")
    assert failure.value.reason in {"bad_url", "refused_address"}
    assert not failure.value.transient
    assert other.hits["/image.jpg"] == 0
