"""The SSRF guard: a download connects only to a public unicast address, unless
DOWNLOADER_ALLOWED_NETWORKS opens the address's range. Exactly, an address is refused when:

* it lies in a block of :data:`_NOT_GLOBAL`: every entry of the IANA IPv4 and IPv6 special-purpose
  registries whose "Globally Reachable" is not True (False, N/A, or blank for a deprecated entry),
  covered here by a few wider blocks, plus IPv4 multicast ``224.0.0.0/4``. The wider blocks also
  refuse the registries' globally reachable service entries inside them: ``192.0.0.9/32`` and
  ``192.0.0.10/32`` (in ``192.0.0.0/24``), and in ``2001::/23`` the PCP, TURN and DNS-SD anycast
  addresses, AMT ``2001:3::/32``, AS112 ``2001:4:112::/48``, ORCHIDv2 ``2001:20::/28`` and DETs
  ``2001:30::/28``: anycast and overlay identifiers, which serve no image;
* it is IPv6 outside ``2000::/3``, the only range IANA allocates for global unicast (so multicast,
  unique-local, link-local, deprecated site-local ``fec0::/10`` and every block reserved by the
  IETF), except as below;
* it is IPv6 and carries an IPv4 address: IPv4-mapped (``::ffff:0:0/96``) and NAT64
  (``64:ff9b::/96``) are judged by the IPv4 address they carry (``::ffff:8.8.8.8`` passes);
  IPv4-compatible (``::/96``), 6to4 (``2002::/16``) and Teredo (``2001::/32``) are refused whatever
  they carry, the reason naming a carried address that is itself refused.

Everything else passes, the registries' other globally reachable entries included (AS112
``192.31.196.0/24``, ``192.175.48.0/24`` and ``2620:4f:8000::/48``, AMT ``192.52.193.0/24``). The
blocks are data here, not Python's ``ipaddress`` flags, whose tables differ between Python versions.
They follow the registries as IANA published them (IPv4: last entry allocated 2017-02, footnotes
revised since; IPv6: newest entry ``100:0:0:1::/64``, RFC 9780, 2025-04), checked against copies
of both CSV files fetched on 2026-07-18; the test (``tests/test_guard_registry.py``) reads those
files (``tests/data/``) and checks every entry of both.

The check sits where the address is used, not where the URL is read, so every redirect hop is
checked and a name that resolves differently the second time (DNS rebinding) gains nothing:

* :class:`GuardedResolver` drops refused addresses from every DNS answer and fails the lookup
  with :class:`AddressRefused` when none is left. aiohttp connects only to what it returns.
* aiohttp skips the resolver for literal-IP hosts (``http://127.0.0.2/``, ``http://[::1]/``), so
  :func:`guarded_socket_factory` checks the address of every socket aiohttp is about to connect,
  whatever the host was. It is the last word; the resolver just makes the common refusal clear.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressRefused(OSError):
    """A connection to an address the guard does not allow."""

    def __init__(self, host: str, detail: str) -> None:
        super().__init__(f"refused to connect to {host}: {detail}")
        self.host = host
        self.detail = detail


# Blocks no download may reach (see the module's docstring for what they cover), most specific name
# first where two overlap. The IPv6 ones outside 2000::/3 are refused by that rule anyway; they are
# listed for the name they give the refusal.
_NOT_GLOBAL: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(block), name)
    for block, name in (
        ("0.0.0.0/8", "in 'this network'"),
        ("10.0.0.0/8", "private-use"),
        ("100.64.0.0/10", "carrier-grade NAT space"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private-use"),
        ("192.0.0.0/24", "an IETF protocol assignment"),
        ("192.0.2.0/24", "documentation space"),
        ("192.88.99.0/24", "deprecated 6to4 relay anycast"),
        ("192.168.0.0/16", "private-use"),
        ("198.18.0.0/15", "benchmarking space"),
        ("198.51.100.0/24", "documentation space"),
        ("203.0.113.0/24", "documentation space"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved or limited broadcast"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
        ("100::/64", "discard-only"),
        ("100:0:0:1::/64", "a dummy prefix"),
        ("2001::/32", "Teredo"),
        ("2001::/23", "an IETF protocol assignment"),
        ("2001:db8::/32", "documentation space"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation space"),
        ("5f00::/16", "an SRv6 segment ID"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "deprecated site-local"),
        ("ff00::/8", "multicast"),
    )
)
_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_IPV4_MAPPED = ipaddress.IPv6Network("::ffff:0:0/96")
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the IPv4 address decides
_IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped or -compatible, NAT64, 6to4, Teredo client)."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64 or (address in _IPV4_COMPATIBLE and int(address) > 1):  # not :: or ::1
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def _block_of(address: IPAddress) -> str | None:
    for network, name in _NOT_GLOBAL:
        if address in network:
            return f"is {name} ({network})"
    return None


def why_refused(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is one)."""
    if isinstance(address, ipaddress.IPv4Address):
        return _block_of(address)
    embedded = _embedded_ipv4(address)
    carried = why_refused(embedded) if embedded is not None else None
    if address in _IPV4_MAPPED or address in _NAT64:
        return None if carried is None else f"carries {embedded}, which {carried}"
    if carried is not None:
        return f"carries {embedded}, which {carried}"
    if (block := _block_of(address)) is not None:
        return block
    if address not in _GLOBAL_UNICAST:
        return "is outside 2000::/3, the IPv6 global unicast range"
    return None


class AddressPolicy:
    """Public addresses pass; others only inside one of the allowed networks."""

    def __init__(self, allowed: Iterable[Network] = ()) -> None:
        self.allowed = tuple(allowed)

    def _is_allowed(self, address: IPAddress) -> bool:
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        return any(candidate in network for candidate in candidates for network in self.allowed)

    def refusal(self, host: str) -> str | None:
        """The reason a connection to the literal address ``host`` is refused, or None."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return f"{host!r} is not an IP address"
        if self._is_allowed(address):
            return None
        reason = why_refused(address)
        return None if reason is None else f"{address} {reason}"

    def check(self, host: str) -> None:
        reason = self.refusal(host)
        if reason is not None:
            raise AddressRefused(host, reason)


class GuardedResolver(AbstractResolver):
    """aiohttp's default resolver, minus the addresses the policy refuses."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver | None = None) -> None:
        self._policy = policy
        self._inner = inner or aiohttp.DefaultResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        answers = await self._inner.resolve(host, port, family)
        kept = [answer for answer in answers if self._policy.refusal(answer["host"]) is None]
        if not kept:
            reasons = "; ".join(sorted({self._policy.refusal(answer["host"]) or "" for answer in answers}))
            raise AddressRefused(host, reasons or "no address")
        return kept

    async def close(self) -> None:
        await self._inner.close()


def guarded_socket_factory(policy: AddressPolicy) -> Any:
    """A socket factory for aiohttp's connector that refuses to connect to refused addresses."""

    def factory(addr_info: tuple[Any, ...]) -> socket.socket:
        family, type_, proto, _canonname, sockaddr = addr_info
        policy.check(str(sockaddr[0]))
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock

    return factory


def guarded_connector(policy: AddressPolicy, *, limit: int, limit_per_host: int) -> aiohttp.TCPConnector:
    """A connector whose every connection, on every hop, passes the policy."""
    return aiohttp.TCPConnector(
        resolver=GuardedResolver(policy),
        socket_factory=guarded_socket_factory(policy),
        limit=limit,
        limit_per_host=limit_per_host,
        ttl_dns_cache=60,
    )


def refused_in(exc: BaseException) -> AddressRefused | None:
    """The AddressRefused behind an aiohttp connection error, if that is what it was."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, AddressRefused):
            return current
        seen.add(id(current))
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, AddressRefused):
            return os_error
        current = current.__cause__ or current.__context__
    return None
