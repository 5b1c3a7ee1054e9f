"""A fault-injecting HTTP stand-in in front of a real embedding service, for faults the real model
cannot be made to have.

No real image crashes or hangs the real model on demand, so tests of poison isolation put this
stand-in between the client and the real service: every request is forwarded to the real service
and its answer returned, except

* an ``/embed`` request whose body names a poison path: answered 500 (``poison_action="500"``),
  never answered (``"hang"``: held until the client gives up), or its connection cut and every
  request failed for ``crash_down_s`` after it (``"crash"``: the service died and restarts), as an
  image that fails, hangs or crashes the model would; or answered 504 (``"504"``: the service too
  busy to compute it) the first ``poison_times`` times, then forwarded;
* anything at all while :attr:`FaultyEmbedding.failing` is set: answered 500 (a service failing
  every request, its probes included: down, not poisoned)::

    with FaultyEmbedding(real.url, poison={"ab/cd/abcd….jpg"}) as standin:
        ... point the indexer at standin.url ...
"""

from __future__ import annotations

import asyncio
import threading
from collections import Counter

import aiohttp
from aiohttp import web


class FaultyEmbedding:
    def __init__(
        self,
        upstream: str,
        poison: set[str] | None = None,
        poison_action: str = "500",
        crash_down_s: float = 1.5,
        poison_times: int = 3,
    ) -> None:
        if poison_action not in ("500", "hang", "crash", "504"):
            raise ValueError("poison_action is '500', 'hang', 'crash' or '504'")
        self.crash_down_s = crash_down_s
        self.poison_times = poison_times
        self.upstream = upstream.rstrip("/")
        self.poison = set(poison or ())
        self.poison_action = poison_action
        self.failing = False
        self.port = 0
        self.hits: Counter[str] = Counter()  # "poisoned", "failed", "forwarded"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._release: asyncio.Event | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._release is not None
        body = await request.read()
        if self.failing:
            self.hits["failed"] += 1
            return web.Response(status=500, text="stand-in: failing every request")
        poisoned = request.path == "/embed" and any(path.encode() in body for path in self.poison)
        if poisoned and self.poison_action == "504" and self.hits["poisoned"] >= self.poison_times:
            poisoned = False  # busy no more: computed like any other
        if poisoned:
            self.hits["poisoned"] += 1
            if self.poison_action == "504":
                return web.Response(status=504, text="stand-in: too busy, not computed")
            if self.poison_action == "hang":
                await self._release.wait()  # held until the stand-in stops; the client gives up first
            if self.poison_action == "crash":
                self.failing = True
                asyncio.get_running_loop().call_later(self.crash_down_s, setattr, self, "failing", False)
                assert request.transport is not None
                request.transport.abort()  # the connection dies with the "service"
            return web.Response(status=500, text="stand-in: this request crashes the model")
        self.hits["forwarded"] += 1
        assert self._session is not None
        async with self._session.request(
            request.method, self.upstream + request.path_qs, data=body or None, headers=_forwarded(request)
        ) as upstream:
            payload = await upstream.read()
            return web.Response(status=upstream.status, body=payload, content_type=upstream.content_type)

    async def _start(self) -> None:
        self._release = asyncio.Event()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600))
        app = web.Application(client_max_size=200 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def _stop(self) -> None:
        if self._release is not None:
            self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start(self) -> FaultyEmbedding:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> FaultyEmbedding:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _forwarded(request: web.Request) -> dict[str, str]:
    return {key: value for key, value in request.headers.items() if key.lower() == "content-type"}
