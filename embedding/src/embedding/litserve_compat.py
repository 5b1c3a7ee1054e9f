"""Every use the embedding service makes of LitServe beyond its documented API, in this one module.

Checked against LitServe 0.2.19 (:data:`LITSERVE_VERSION`), the version ``embedding/pyproject.toml``
pins exactly. ``embedding/tests/test_litserve_seam.py`` fails when the installed LitServe is another
version (re-read each item below against the new source, then bump both) and when any other module
of the service imports a private LitServe name.

The rest of the service uses LitServe as documented: a ``LitAPI`` (``setup``, ``decode_request``,
whose annotation LitServe reads as the request model, ``predict``, ``encode_response``, ``health``)
served by ``LitServer(...).run(...)``. What it needs besides, and why:

1. **Its own serving loop** (:mod:`embedding.loop`: decode in threads while the model runs, batch by
   items). ``LitLoop`` is LitServe's extension point for loops, but the entry point a model worker
   calls is ``loop(lit_api, device, worker_id, request_queue, transport, workers_setup_status,
   callback_runner)`` (``_BaseLoop.__call__``), and the stock ``__call__`` calls ``run`` forever, so a
   loop could never end its worker when the server goes away. :class:`WorkerLoop` overrides that
   entry point and hands the loop two plain objects instead: :class:`Requests` and :class:`Replies`.
2. **The request queue's entries**: the HTTP process puts ``(response_queue_id, uid,
   time.monotonic(), request)`` (``BaseRequestHandler._submit_request``); LitServe's own loops stop
   at ``_SENTINEL_VALUE``; when the server's queue manager is gone, ``get`` raises ``EOFError`` or
   ``OSError``. :class:`Requests` reads all three.
3. **Answers**: ``LitLoop.put_response`` with ``LitAPIStatus.OK`` and ``LoopResponseType.REGULAR``,
   ``LitLoop.put_error_response`` (pickles the exception; the HTTP process re-raises an
   ``HTTPException`` with its status and answers 500 for anything else). :class:`Replies`.
4. **The request timeout**: ``LitServer(timeout=...)`` is stored on each API as ``request_timeout``
   (``None``, ``False`` or ``-1``: none) and enforced by LitServe's own loops only, so a custom loop
   enforces it itself (:func:`request_timeout`, :func:`timed_out_error`: the same 504 LitServe sends).
5. **Logging**: LitServe gives the ``litserve`` logger its own stdout handler at import and again in
   ``run()`` through ``litserve.server.configure_logging``; :func:`route_logs_to_ours` replaces it so
   its records reach the service's handlers (text or JSON).
6. **No gzip**: ``LitServer`` adds ``GZipMiddleware`` to every non-streaming server, with no option to
   leave it out; :func:`without_gzip` removes it from the app's middleware before ``run()``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import litserve as ls
import litserve.server
from fastapi import HTTPException
from litserve.loops.base import _SENTINEL_VALUE, LitLoop
from litserve.utils import LitAPIStatus, LoopResponseType
from starlette.middleware.gzip import GZipMiddleware

LITSERVE_VERSION = "0.2.19"


@dataclass(frozen=True)
class QueuedRequest:
    """One request as the HTTP process queued it for the model workers."""

    response_queue_id: int
    uid: str
    submitted_at: float  # time.monotonic() in the HTTP process when it queued the request (one clock per host)
    request: Any  # the request model, already validated (decode_request's annotation)


class Requests:
    """A model worker's request queue, in arrival order."""

    def __init__(self, request_queue: Any) -> None:
        self._queue = request_queue

    def next(self) -> QueuedRequest | None:
        """The next request (blocks until one comes); None once the server stops feeding this worker."""
        try:
            entry = self._queue.get()
        except (EOFError, OSError):  # the server's queue manager went away: the server is stopping
            return None
        if entry == _SENTINEL_VALUE:
            return None
        response_queue_id, uid, submitted_at, request = entry
        return QueuedRequest(response_queue_id, uid, submitted_at, request)


class Replies:
    """Sends each request's answer back to the HTTP process that holds its connection."""

    def __init__(self, loop: LitLoop, transport: Any) -> None:
        self._loop = loop
        self._transport = transport

    def answer(self, to: QueuedRequest, response: Any) -> None:
        """``response``: what ``encode_response`` returned (here a Starlette ``Response``)."""
        self._loop.put_response(
            self._transport, to.response_queue_id, to.uid, response, LitAPIStatus.OK, LoopResponseType.REGULAR
        )

    def fail(self, to: QueuedRequest, error: Exception) -> None:
        """An ``HTTPException`` is answered with its status and detail; anything else with 500."""
        self._loop.put_error_response(self._transport, to.response_queue_id, to.uid, error)


class WorkerLoop(LitLoop):
    """A ``LitLoop`` whose whole work is :meth:`serve`; when it returns, the model worker ends."""

    def __call__(  # type: ignore[override]  # LitServe's internal entry point (see the module docstring)
        self,
        lit_api: ls.LitAPI,
        device: str,
        worker_id: int,
        request_queue: Any,
        transport: Any,
        workers_setup_status: dict[str, str],
        callback_runner: Any,
    ) -> None:
        self.serve(lit_api, Requests(request_queue), Replies(self, transport))

    def serve(self, lit_api: Any, requests: Requests, replies: Replies) -> None:
        raise NotImplementedError


def request_timeout(lit_api: object) -> float | None:
    """Seconds a request may wait for the model (``LitServer(timeout=...)``); None for no limit."""
    limit = getattr(lit_api, "request_timeout", None)
    return None if limit in (None, False, -1) else float(limit)


def timed_out_error() -> HTTPException:
    """The error that answers a request which waited past :func:`request_timeout` (504, as LitServe's loops)."""
    return HTTPException(504, "Request timed out: it waited too long for the model")


def _keep_our_log_handlers(*args: object, **kwargs: object) -> None:
    logger = logging.getLogger("litserve")
    logger.handlers.clear()
    logger.propagate = True


def route_logs_to_ours() -> None:
    """LitServe's log records go to the service's handlers, now and after ``LitServer.run()`` starts."""
    litserve.server.configure_logging = _keep_our_log_handlers
    _keep_our_log_handlers()


def without_gzip(server: ls.LitServer) -> None:
    """Answers go out uncompressed (see :mod:`embedding.server` for why)."""
    server.app.user_middleware = [m for m in server.app.user_middleware if m.cls is not GZipMiddleware]
