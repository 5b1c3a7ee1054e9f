"""Waiting out a fault: the indexer retries a call to the broker, the embedding service or Qdrant with
the shared backoff (:func:`dyimages_common.backoff.async_retrying`) for as long as it takes, and counts
each retry in ``dyimages_indexer_retries_total{target}``. Messages stay unacknowledged meanwhile."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from dyimages_common.backoff import async_retrying
from indexer import metrics

T = TypeVar("T")


async def retry_until_done(
    target: str, errors: tuple[type[Exception], ...], call: Callable[[], Awaitable[T]], *, maximum_s: float
) -> T:
    """``call()`` until it succeeds, backing off (at most ``maximum_s`` between tries) while it raises
    one of ``errors``; anything else is raised at once."""
    async for attempt in async_retrying(*errors, maximum=maximum_s):
        with attempt:
            if attempt.retry_state.attempt_number > 1:
                metrics.RETRIES.labels(target).inc()
            return await call()
    raise AssertionError("unreachable: the retry policy never gives up")
