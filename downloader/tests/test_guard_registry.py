"""The SSRF guard against every entry of the IANA IPv4 and IPv6 special-purpose address registries.

The registries are kept beside this test as the CSV files IANA publishes (``data/``, with the URL
and the revision in their header). Every block whose "Globally Reachable" is not ``True`` (False,
N/A, or blank for a deprecated block) is refused at its first, a middle and its last address,
unless the most specific entry holding that address says ``True``; and
DOWNLOADER_ALLOWED_NETWORKS naming the block lets the same addresses through. Site-local
``fec0::/10`` is deprecated (RFC 3879) and so not in the registry: it is added here. Each refusal
names a block of the guard's own table, and the globally reachable entries pass except those the
guard's docstring names (inside a block it refuses whole).

One entry is judged by what it carries instead: an IPv4-mapped address (``::ffff:0:0/96``) never
goes on the wire, a connection to it is a connection to its IPv4 address, so the guard decides
by that address (the embedding tests below refuse every non-global one; ``::ffff:8.8.8.8``
passes). Addresses only; nothing is sent anywhere.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from downloader.guard import AddressPolicy

pytestmark = pytest.mark.unit

DATA = Path(__file__).parent / "data"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Entry:
    network: Network
    name: str
    globally_reachable: str  # True, False, N/A, or "" (deprecated block)


def _read(name: str) -> list[Entry]:
    lines = [line for line in (DATA / name).read_text().splitlines(keepends=True) if not line.startswith("#")]
    entries = []
    for row in csv.DictReader(lines):
        reachable = (row["Globally Reachable"].split() or [""])[0]
        for block in row["Address Block"].split(","):
            network = ipaddress.ip_network(re.sub(r"\[\w+\]", "", block).strip())
            entries.append(Entry(network, row["Name"], reachable))
    return entries


IPV4 = _read("iana-ipv4-special-registry-1.csv")
IPV6 = _read("iana-ipv6-special-registry-1.csv")
SITE_LOCAL = Entry(ipaddress.ip_network("fec0::/10"), "Site-Local (deprecated, RFC 3879)", "False")
REGISTRY = [*IPV4, *IPV6, SITE_LOCAL]


def test_the_registries_were_read_whole() -> None:
    """A guard against a transcription that lost rows: counts, and the newest entries, present."""
    assert len(IPV4) == 26  # 25 rows, one of them two blocks
    assert len(IPV6) == 25
    blocks = {str(entry.network) for entry in REGISTRY}
    assert {"5f00::/16", "3fff::/20", "2001:30::/28", "192.0.0.0/24", "255.255.255.255/32"} <= blocks
    assert {"100:0:0:1::/64", "2001:1::3/128"} <= blocks  # the newest IPv6 entries (2025-04, 2024-04)


def _most_specific(address: Address) -> Entry:
    holding = [entry for entry in REGISTRY if address in entry.network]
    return max(holding, key=lambda entry: entry.network.prefixlen)


def _samples(network: Network) -> list[Address]:
    return sorted({network[0], network[network.num_addresses // 2], network[-1]})


IPV4_MAPPED = ipaddress.ip_network("::ffff:0:0/96")

REFUSED = [
    pytest.param(entry, address, id=f"{entry.network}-{address}")
    for entry in REGISTRY
    if entry.globally_reachable != "True" and entry.network != IPV4_MAPPED
    for address in _samples(entry.network)
    if _most_specific(address).globally_reachable != "True"
]


@pytest.mark.parametrize(("entry", "address"), REFUSED)
def test_every_block_not_globally_reachable_is_refused(entry: Entry, address: Address) -> None:
    assert AddressPolicy().refusal(str(address)) is not None, f"{address} ({entry.name}) passes the guard"


@pytest.mark.parametrize(("entry", "address"), REFUSED)
def test_each_refusal_names_a_block_of_the_guards_own_table(entry: Entry, address: Address) -> None:
    """The reason comes from the guard's data, not from this Python's ``ipaddress`` flags (whose
    tables change between versions): it names a block holding the address, or the 2000::/3 rule."""
    reason = AddressPolicy().refusal(str(address)) or ""
    named = re.findall(r"\(([0-9a-f:.]+/\d+)\)", reason)
    assert named or "outside 2000::/3" in reason, reason
    if named and "carries" not in reason:
        assert address in ipaddress.ip_network(named[0]), reason


# The newest blocks of the IPv6 registry, each refused under its own name.
NEWEST = {
    "100:0:0:1::1": "a dummy prefix (100:0:0:1::/64)",
    "3fff::1": "documentation space (3fff::/20)",
    "5f00::1": "an SRv6 segment ID (5f00::/16)",
    "2001:30::1": "an IETF protocol assignment (2001::/23)",
    "2001:1::3": "an IETF protocol assignment (2001::/23)",
    "64:ff9b:1::808:808": "local-use IPv4/IPv6 translation (64:ff9b:1::/48)",
}


@pytest.mark.parametrize(("address", "named"), NEWEST.items())
def test_the_newest_ipv6_blocks_are_refused_by_name(address: str, named: str) -> None:
    assert AddressPolicy().refusal(address) == f"{address} is {named}"


# The registries' globally reachable entries that the guard refuses all the same, because they lie
# inside a block it refuses whole (the module docstring names them): anycast and overlay identifiers.
REFUSED_THOUGH_REACHABLE = {
    "192.0.0.9/32",
    "192.0.0.10/32",
    "2001:1::1/128",
    "2001:1::2/128",
    "2001:1::3/128",
    "2001:3::/32",
    "2001:4:112::/48",
    "2001:20::/28",
    "2001:30::/28",
}
NAT64 = ipaddress.ip_network("64:ff9b::/96")


@pytest.mark.parametrize(
    "entry", [e for e in REGISTRY if e.globally_reachable == "True" and e.network != NAT64], ids=str
)
def test_globally_reachable_entries_pass_except_the_named_ones(entry: Entry) -> None:
    """Exactly what the guard's docstring says of the registries' globally reachable entries."""
    refused = [a for a in _samples(entry.network) if AddressPolicy().refusal(str(a)) is not None]
    if str(entry.network) in REFUSED_THOUGH_REACHABLE:
        assert refused == _samples(entry.network)
    else:
        assert refused == [], f"{entry.network} ({entry.name}) is globally reachable"


@pytest.mark.parametrize("address", ["4000::1", "::808:808", "e000::1", "fe00::1"])
def test_ipv6_outside_global_unicast_is_refused(address: str) -> None:
    reason = AddressPolicy().refusal(address) or ""
    assert "outside 2000::/3" in reason, reason


@pytest.mark.parametrize(("entry", "address"), REFUSED)
def test_allowed_networks_open_each_block(entry: Entry, address: Address) -> None:
    assert AddressPolicy([entry.network]).refusal(str(address)) is None


def _embeddings(v4: ipaddress.IPv4Address) -> dict[str, ipaddress.IPv6Address]:
    value = int(v4)
    return {
        "IPv4-mapped": ipaddress.IPv6Address((0xFFFF << 32) | value),
        "IPv4-compatible": ipaddress.IPv6Address(value),
        "NAT64": ipaddress.IPv6Address((0x0064_FF9B << 96) | value),
        "6to4": ipaddress.IPv6Address((0x2002 << 112) | (value << 80) | 1),
        # Teredo: 2001:0:<server v4>:<flags>:<port ^ ffff>:<client v4 ^ ffffffff>
        "Teredo": ipaddress.IPv6Address(
            (0x2001_0000 << 96)
            | (int(ipaddress.IPv4Address("8.8.8.8")) << 64)
            | (0xFFFF << 16) << 32
            | (value ^ 0xFFFFFFFF)
        ),
    }


EMBEDDED = [
    pytest.param(kind, v6, id=f"{kind}-{v4}")
    for entry in IPV4
    if entry.globally_reachable != "True"
    for v4 in _samples(entry.network)
    if _most_specific(v4).globally_reachable != "True" and int(v4) > 1  # ::, ::1 are their own entries
    for kind, v6 in _embeddings(v4).items()
]


@pytest.mark.parametrize(("kind", "address"), EMBEDDED)
def test_ipv6_addresses_carrying_a_refused_ipv4_address_are_refused(kind: str, address: ipaddress.IPv6Address) -> None:
    reason = AddressPolicy().refusal(str(address))
    assert reason is not None, f"{kind} {address} passes the guard"


def test_the_embeddings_are_built_right() -> None:
    """The test's own arithmetic, checked against ipaddress's decoding of each form."""
    forms = _embeddings(ipaddress.IPv4Address("10.1.2.3"))
    assert forms["IPv4-mapped"].ipv4_mapped == ipaddress.IPv4Address("10.1.2.3")
    assert forms["6to4"].sixtofour == ipaddress.IPv4Address("10.1.2.3")
    assert forms["Teredo"].teredo == (ipaddress.IPv4Address("8.8.8.8"), ipaddress.IPv4Address("10.1.2.3"))
    assert str(forms["NAT64"]) == "64:ff9b::a01:203"


@pytest.mark.parametrize("address", ["8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])
def test_public_addresses_and_their_translations_pass(address: str) -> None:
    assert AddressPolicy().refusal(address) is None
