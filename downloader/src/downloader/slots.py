"""The slots a download takes, in order, so that a busy host or a slow decoder never blocks the rest.

A host slot first (``DOWNLOADER_PER_HOST``): a host with thousands of URLs waits on its own limit
without holding global slots other hosts could use. Then a body slot, kept until the image is
stored, so however much faster the network is than the decoder, at most ``4 x concurrency`` bodies
wait in memory. Then a global slot (``DOWNLOADER_CONCURRENCY``), for the fetch alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable

from yarl import URL

from downloader.fetch import Fetched


class DownloadSlots:
    """The host, body and global slots, and which downloads are past them (``in_flight``)."""

    def __init__(self, *, concurrency: int, per_host: int) -> None:
        self._per_host = per_host
        self._global_slots = asyncio.Semaphore(concurrency)
        self._body_slots = asyncio.Semaphore(concurrency * 4)
        self._host_slots: weakref.WeakValueDictionary[str, asyncio.Semaphore] = weakref.WeakValueDictionary()
        self.in_flight: set[asyncio.Task[None]] = set()  # tasks past their slots: fetching or storing

    def _host_slot(self, url: str) -> asyncio.Semaphore:
        host = URL(url).host or ""
        slot = self._host_slots.get(host)
        if slot is None:
            slot = asyncio.Semaphore(self._per_host)
            self._host_slots[host] = slot
        return slot

    @contextlib.asynccontextmanager
    async def fetched(self, url: str, fetch: Callable[[str], Awaitable[Fetched]]) -> AsyncIterator[Fetched]:
        """``fetch(url)`` under the host and global slots; the body slot and the body's bytes in the
        budget are held until the ``async with`` block (checking and storing) ends."""
        current = asyncio.current_task()
        assert current is not None
        async with self._host_slot(url):
            await self._body_slots.acquire()
            try:
                async with self._global_slots:
                    self.in_flight.add(current)  # type: ignore[arg-type]
                    result = await fetch(url)
            except BaseException:
                self.in_flight.discard(current)  # type: ignore[arg-type]
                self._body_slots.release()
                raise
        try:
            yield result
        finally:
            self.in_flight.discard(current)  # type: ignore[arg-type]
            self._body_slots.release()
            if result.reservation is not None:
                result.reservation.release()
