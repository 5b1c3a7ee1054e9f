"""Bounds in bytes on what the downloader holds at once: image bodies (DOWNLOADER_MAX_INFLIGHT_BYTES)
and decoders' buffers (DOWNLOADER_MAX_DECODE_BYTES).

A count of images is no bound on memory when one image may be 50 MiB. So a download reserves its
size before it reads the body: the Content-Length when the server declares it (aiohttp refuses a
body longer than that), else MAX_IMAGE_BYTES, shrunk to the real size once the body is read. The
reservation is held until the image is checked and stored, then given back. (A body being finished
is briefly held twice, its read buffer and its bytes; that transient is not counted.)

Reservations are granted strictly in arrival order, so a large one at the head is not overtaken
forever by small ones, and one larger than the whole budget is granted when nothing else is held
(it then runs alone): no request can wait for ever. A download waiting for budget holds its
connection but reads nothing: aiohttp stops reading the socket once its small buffer is full.

Decoding has its own budget: before an image is decoded, its decode memory, estimated from its
header (``dyimages_common.images.checks.decode_memory``), is reserved there, so however many threads
decode at once, their buffers stay bounded. Reading that header is reserved first too, for what the
bytes alone say opening costs (``open_memory``: the metadata Pillow keeps, a WebP's canvases).
It is a separate budget because a download waiting to
decode already holds its body's bytes: with one shared budget, bodies could fill it and all wait
for decode memory that only their own release would free.
"""

from __future__ import annotations

import asyncio
from collections import deque

from prometheus_client import Gauge


class Reservation:
    """Bytes granted to one download; give them back with :meth:`release` (idempotent)."""

    def __init__(self, budget: ByteBudget, size: int) -> None:
        self._budget = budget
        self.size = size

    def shrink(self, size: int) -> None:
        """Keep only ``size`` bytes (the body turned out smaller than reserved)."""
        if size < self.size:
            self._budget._give_back(self.size - size)
            self.size = size

    def release(self) -> None:
        self.shrink(0)


class ByteBudget:
    def __init__(self, limit: int, gauge: Gauge | None = None) -> None:
        self.limit = limit
        self._gauge = gauge
        self.used = 0
        self.peak = 0  # the most bytes reserved at once: what the tests and the benchmark read
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    def _fits(self, size: int) -> bool:
        return self.used == 0 or self.used + size <= self.limit

    async def reserve(self, size: int) -> Reservation:
        """Wait until ``size`` bytes fit (or nothing else is held), in arrival order."""
        if not self._waiters and self._fits(size):
            self._take(size)
            return Reservation(self, size)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (size, future)
        self._waiters.append(entry)
        try:
            await future
        except BaseException:
            if future.done() and not future.cancelled():
                self._give_back(size)  # granted just as the waiter was cancelled
            else:
                if entry in self._waiters:
                    self._waiters.remove(entry)
                self._wake()  # the next one may fit now that this one left the head
            raise
        return Reservation(self, size)

    def _take(self, size: int) -> None:
        self.used += size
        self.peak = max(self.peak, self.used)
        if self._gauge is not None:
            self._gauge.set(self.used)

    def _give_back(self, size: int) -> None:
        self.used -= size
        if self._gauge is not None:
            self._gauge.set(self.used)
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self._fits(self._waiters[0][0]):
            size, future = self._waiters.popleft()
            if future.cancelled():
                continue  # its waiter is leaving; it takes nothing
            self._take(size)
            future.set_result(None)
