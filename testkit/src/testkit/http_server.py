"""A local HTTP server on 127.0.0.1 that serves images and misbehaves on request.

Runs aiohttp in a background thread so blocking tests, subprocesses and benchmarks can use it::

    with ImageServer() as server:
        server.add("/a.jpg", Route(body=jpeg(1)))
        server.add("/flaky.jpg", Route(body=jpeg(2), fail_times=1, fail_status=500))
        url = server.url("/a.jpg")
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

from aiohttp import web


@dataclass
class Route:
    body: bytes = b""
    status: int = 200
    content_type: str = "image/jpeg"
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering
    redirect: str | None = None  # Location for a 302
    fail_times: int = 0  # answer fail_status this many times first
    fail_status: int = 500
    retry_after: str | None = None  # Retry-After on failures
    drip: float = 0.0  # seconds between 1 KiB chunks of the body (a slow body)


class ImageServer:
    def __init__(self, host: str = "127.0.0.1", latency: float = 0.0) -> None:
        self.host = host
        self.port = 0
        self.latency = latency  # added to every response
        self.routes: dict[str, Route] = {}
        self.hits: Counter[str] = Counter()
        self.hit_times: dict[str, list[float]] = {}  # time.monotonic() of each request, per path
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None

    def add(self, path: str, route: Route) -> str:
        self.routes[path] = route
        return self.url(path)

    def url(self, path: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        self.hits[path] += 1
        self.hit_times.setdefault(path, []).append(time.monotonic())
        route = self.routes.get(path)
        if self.latency:
            await asyncio.sleep(self.latency)
        if route is None:
            return web.Response(status=404, text="not found")
        if route.delay:
            await asyncio.sleep(route.delay)
        if self.hits[path] <= route.fail_times:
            headers = {"Retry-After": route.retry_after} if route.retry_after else {}
            return web.Response(status=route.fail_status, text="failing on purpose", headers=headers)
        if route.redirect is not None:
            raise web.HTTPFound(location=route.redirect)
        if route.drip:
            response = web.StreamResponse(status=route.status, headers=route.headers)
            response.content_type = route.content_type
            await response.prepare(request)
            for start in range(0, len(route.body), 1024):
                await response.write(route.body[start : start + 1024])
                await asyncio.sleep(route.drip)
            await response.write_eof()
            return response
        return web.Response(
            status=route.status, body=route.body, content_type=route.content_type, headers=route.headers
        )

    async def _start(self) -> None:
        app = web.Application()
        app.router.add_route("GET", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port, backlog=1024)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self) -> ImageServer:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> ImageServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
