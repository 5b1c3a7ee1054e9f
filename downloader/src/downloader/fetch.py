"""Fetching one URL: redirects followed by hand (each hop through the guarded connector), the
body streamed under a byte cap, one deadline for the whole download.

Every failure becomes a :class:`FetchFailed` with its :class:`~dyimages_common.reasons.Reason` (the
metric label and the first word of ``last_error``), a detail a person can read, and whether it
is ``transient`` (worth another try later) or permanent.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import aiohttp
from yarl import URL

from downloader.budget import ByteBudget, Reservation
from downloader.guard import AddressPolicy, guarded_connector, refused_in
from dyimages_common.reasons import Reason

REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Statuses worth another try: the server is overloaded, restarting, or asks us to slow down.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504, 507, 509, 520, 521, 522, 523, 524})
CHUNK = 64 * 1024


def open_session(
    policy: AddressPolicy, *, connect_timeout_s: float, concurrency: int, per_host: int, user_agent: str
) -> aiohttp.ClientSession:
    """The HTTP session: every connection through the address guard, the concurrency limits on it."""
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=None)
    connector = guarded_connector(policy, limit=concurrency, limit_per_host=per_host)
    headers = {"User-Agent": user_agent, "Accept": "image/*,*/*;q=0.5"}
    return aiohttp.ClientSession(
        connector=connector, timeout=timeout, headers=headers, trust_env=False, auto_decompress=True
    )


class FetchFailed(Exception):
    def __init__(
        self, reason: Reason, detail: str, *, transient: bool = False, retry_after: float | None = None
    ) -> None:
        super().__init__(reason.with_detail(detail))
        self.reason = reason
        self.detail = detail
        self.transient = transient
        self.retry_after = retry_after


@dataclass(frozen=True)
class Fetched:
    data: bytes
    final_url: str
    redirects: int
    reservation: Reservation | None = None  # the body's bytes in the budget: release once stored


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class Fetcher:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        max_bytes: int,
        max_redirects: int,
        timeout_s: float,
        budget: ByteBudget | None = None,
    ) -> None:
        self._session = session
        self._max_bytes = max_bytes
        self._max_redirects = max_redirects
        self._timeout_s = timeout_s
        self._budget = budget

    async def fetch(self, url: str) -> Fetched:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout_s) as deadline:
                return await self._follow(url, deadline)
        except FetchFailed:
            raise
        except aiohttp.ClientError as exc:  # before TimeoutError: aiohttp's timeouts are both
            raise _classify(exc, time.monotonic() - started) from None
        except TimeoutError:
            raise FetchFailed(
                Reason.TIMEOUT, f"no complete answer within {self._timeout_s:g} s", transient=True
            ) from None

    async def _follow(self, url: str, deadline: asyncio.Timeout) -> Fetched:
        current = URL(url)
        seen = {str(current)}
        for hop in range(self._max_redirects + 1):
            async with self._session.get(current, allow_redirects=False) as response:
                if response.status in REDIRECT_STATUSES:
                    current = _next_hop(current, response)
                    if str(current) in seen:
                        raise FetchFailed(Reason.REDIRECT_LOOP, f"redirected back to {current}")
                    seen.add(str(current))
                    continue
                _check_status(response)
                reservation = await self._reserve(response, deadline)
                try:
                    data = await self._read_capped(response)
                except BaseException:
                    if reservation is not None:
                        reservation.release()
                    raise
                if reservation is not None:
                    reservation.shrink(len(data))
                return Fetched(data, str(current), hop, reservation)
        raise FetchFailed(Reason.TOO_MANY_REDIRECTS, f"more than {self._max_redirects} redirects (last: {current})")

    async def _reserve(self, response: aiohttp.ClientResponse, deadline: asyncio.Timeout) -> Reservation | None:
        """Reserve the body's size in the budget before reading it; time spent waiting for the budget
        does not count against the download's deadline (the server is not the slow one)."""
        declared = response.content_length
        if declared is not None and declared > self._max_bytes:
            raise FetchFailed(
                Reason.TOO_LARGE, f"Content-Length {declared} is over the limit of {self._max_bytes} bytes"
            )
        if self._budget is None:
            return None
        # A compressed body may grow past its Content-Length once decoded: then, as with no length, the most.
        size = self._max_bytes if declared is None or "Content-Encoding" in response.headers else declared
        started = time.monotonic()
        reservation = await self._budget.reserve(size)
        when = deadline.when()
        if when is not None:
            deadline.reschedule(when + time.monotonic() - started)
        return reservation

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK):
            body += chunk
            if len(body) > self._max_bytes:
                raise FetchFailed(Reason.TOO_LARGE, f"body is over the limit of {self._max_bytes} bytes")
        return bytes(body)


def _next_hop(current: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise FetchFailed(Reason.BAD_REDIRECT, f"{response.status} without a Location header")
    try:
        target = current.join(URL(location)).with_fragment(None)
    except ValueError as exc:
        raise FetchFailed(Reason.BAD_REDIRECT, f"unusable Location {location[:200]!r} ({exc})") from None
    if target.scheme not in {"http", "https"} or not target.host:
        raise FetchFailed(Reason.BAD_REDIRECT, f"redirect to a non-http(s) URL {str(target)[:200]!r}")
    return target


def _check_status(response: aiohttp.ClientResponse) -> None:
    if response.status == 200:
        return
    reason = Reason.for_http_status(response.status)  # a status without a member: its class, status in the detail
    detail = f"{response.status} {response.reason or ''}".strip()
    if response.status in TRANSIENT_STATUSES:
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        raise FetchFailed(reason, detail, transient=True, retry_after=retry_after)
    raise FetchFailed(reason, detail)


def _classify(exc: aiohttp.ClientError, elapsed: float) -> FetchFailed:
    refused = refused_in(exc)
    if refused is not None:
        return FetchFailed(Reason.REFUSED_ADDRESS, refused.detail)
    if isinstance(exc, aiohttp.InvalidURL):
        return FetchFailed(Reason.BAD_URL, str(exc))
    if isinstance(exc, aiohttp.ServerTimeoutError):  # connect timeout (a ClientConnectorError it is not)
        return FetchFailed(Reason.TIMEOUT, f"{exc.__class__.__name__} after {elapsed:.1f} s", transient=True)
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return FetchFailed(Reason.DNS_ERROR, str(exc), transient=True)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return FetchFailed(Reason.CONNECTION_ERROR, str(exc), transient=True)
    if isinstance(exc, aiohttp.ClientPayloadError | aiohttp.ServerDisconnectedError | aiohttp.ClientOSError):
        return FetchFailed(Reason.CONNECTION_ERROR, f"{exc.__class__.__name__}: {exc}", transient=True)
    return FetchFailed(Reason.HTTP_ERROR, f"{exc.__class__.__name__}: {exc}", transient=True)
