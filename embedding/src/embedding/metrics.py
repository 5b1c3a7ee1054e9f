"""Prometheus metrics of the embedding service, shared by its HTTP and model processes.

LitServe answers HTTP in one process and runs the model in others, so the metrics use
prometheus_client's multiprocess mode (see :mod:`embedding.metrics_dir`): ``/metrics`` sums the
files every process writes.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, multiprocess

from dyimages_common.embeddings.wire import EMBED_PATH
from embedding.metrics_dir import ENV as _ENV

REQUESTS = Counter(
    "dyimages_embedding_requests_total", "Embed requests answered, by kind and HTTP status", ["kind", "status"]
)
ITEMS = Counter("dyimages_embedding_items_total", "Texts and images embedded", ["kind"])
BATCH_SIZE = Histogram(
    "dyimages_embedding_batch_size",
    "Items per model forward pass",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)
LATENCY = Histogram(
    "dyimages_embedding_latency_seconds",
    "Time to answer an embed request, by kind",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
)


def render() -> tuple[bytes, str]:
    """The exposition text: every process's samples in multiprocess mode, else this process's."""
    if os.environ.get(_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


# The first key of the JSON body names the kind; clients send one key, so a look at the start is
# enough and the body is not parsed twice.
_KIND = re.compile(rb'^\s*\{\s*"(texts|images)"')

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class EmbedMetricsMiddleware:
    """ASGI middleware: counts and times every POST /embed by kind and HTTP status."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != EMBED_PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        kind = "unknown"
        first_chunk = True
        status = 500

        async def receive_and_peek() -> MutableMapping[str, Any]:
            nonlocal kind, first_chunk
            message = await receive()
            if first_chunk and message["type"] == "http.request":
                first_chunk = False
                match = _KIND.match(message.get("body", b"")[:256])
                if match:
                    kind = "text" if match[1] == b"texts" else "image"
            return message

        async def send_and_note(message: MutableMapping[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive_and_peek, send_and_note)
        finally:
            REQUESTS.labels(kind=kind, status=str(status)).inc()
            LATENCY.labels(kind=kind).observe(time.perf_counter() - started)
