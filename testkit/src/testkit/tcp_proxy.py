"""A TCP forwarder in a background thread, for a real service that is away and then comes back.

Point a client at ``proxy.port`` before :meth:`TcpProxy.open` and it finds nothing listening
(connection refused, as when the broker is down); after ``open()`` every connection is forwarded
to the real service; :meth:`TcpProxy.drop` cuts every open connection (the broker restarting)
and stops listening until the next ``open()``::

    proxy = TcpProxy("127.0.0.1", 5672)       # nothing listens on proxy.port yet
    ... start a client with RABBITMQ_PORT=proxy.port ...
    proxy.open()                               # the "broker" is reachable now
    proxy.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from testkit.procs import free_port


class TcpProxy:
    def __init__(self, target_host: str, target_port: int, port: int | None = None) -> None:
        self.target = (target_host, target_port)
        self.port = port or free_port()
        self.connections = 0  # accepted so far
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def _handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            client_writer.close()
            return
        self._writers |= {client_writer, upstream_writer}
        await asyncio.gather(self._pipe(client_reader, upstream_writer), self._pipe(upstream_reader, client_writer))
        self._writers -= {client_writer, upstream_writer}

    async def _open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _drop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def open(self) -> TcpProxy:
        """Start accepting and forwarding connections."""
        self._call(self._open())
        return self

    def drop(self) -> None:
        """Cut every forwarded connection and stop listening (until ``open()`` again)."""
        self._call(self._drop())

    def close(self) -> None:
        self.drop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def __enter__(self) -> TcpProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
