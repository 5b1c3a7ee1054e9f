"""The SSRF guard: no connection to a loopback, private, link-local, multicast, reserved or
unspecified address, nor to any block the IANA IPv4/IPv6 special-purpose registries mark as not
globally reachable (and deprecated site-local ``fec0::/10``), unless DOWNLOADER_ALLOWED_NETWORKS
opens its range. An IPv6 address that carries an IPv4 one (IPv4-mapped or -compatible, NAT64,
6to4, Teredo) is refused when the IPv4 address would be.

The blocks are listed here rather than left to ``ipaddress`` alone because its tables depend on
the Python version (3.11 lets ``fec0::/10``, ``5f00::/16``, ``3fff::/20`` and ``192.0.0.0/24``
through); the test checks every entry of both registries, kept as data files beside it.

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


# Blocks no download may reach: the special-purpose registries' entries that are not globally
# reachable (a few wider ones cover several entries), plus multicast and site-local.
_NOT_GLOBAL: tuple[tuple[Network, str], ...] = tuple(
    (ipaddress.ip_network(block), name)
    for block, name in (
        ("0.0.0.0/8", "this network"),
        ("10.0.0.0/8", "private-use"),
        ("100.64.0.0/10", "shared address space (carrier-grade NAT)"),
        ("127.0.0.0/8", "loopback"),
        ("169.254.0.0/16", "link-local"),
        ("172.16.0.0/12", "private-use"),
        ("192.0.0.0/24", "IETF protocol assignments"),
        ("192.0.2.0/24", "documentation"),
        ("192.88.99.0/24", "6to4 relay anycast, deprecated"),
        ("192.168.0.0/16", "private-use"),
        ("198.18.0.0/15", "benchmarking"),
        ("198.51.100.0/24", "documentation"),
        ("203.0.113.0/24", "documentation"),
        ("224.0.0.0/4", "multicast"),
        ("240.0.0.0/4", "reserved, and limited broadcast"),
        ("::/128", "unspecified"),
        ("::1/128", "loopback"),
        ("64:ff9b:1::/48", "local-use IPv4/IPv6 translation"),
        ("100::/63", "discard-only and dummy prefixes"),
        ("2001::/23", "IETF protocol assignments, Teredo included"),
        ("2001:db8::/32", "documentation"),
        ("2002::/16", "6to4"),
        ("3fff::/20", "documentation"),
        ("5f00::/16", "segment routing SIDs"),
        ("fc00::/7", "unique-local"),
        ("fe80::/10", "link-local"),
        ("fec0::/10", "site-local, deprecated"),
        ("ff00::/8", "multicast"),
    )
)
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


def why_refused(address: IPAddress) -> str | None:
    """Why ``address`` is not a public unicast address (None when it is one)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None and (inner := why_refused(embedded)):
            return f"carries {embedded}, which {inner}"
        if address.ipv4_mapped is not None or address in _NAT64:
            return None  # the IPv4 address it carries (public) decides
    for attribute in ("is_unspecified", "is_loopback", "is_link_local", "is_multicast", "is_private", "is_reserved"):
        if getattr(address, attribute):
            return f"is {attribute.removeprefix('is_').replace('_', '-')}"
    for network, name in _NOT_GLOBAL:  # what this Python's ipaddress does not know
        if address in network:
            return f"is in {network} ({name})"
    if not address.is_global:
        return "is not a global address"
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
