"""The retry policy for transient faults: named exceptions, exponential backoff with jitter."""

from __future__ import annotations

import logging
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_random_exponential,
)

log = logging.getLogger(__name__)


def _log_before_sleep(state: RetryCallState) -> None:
    """Say what failed and when the next try is (tenacity's own logger names no function here)."""
    error = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0.0
    log.warning("attempt %d failed (%r); trying again in %.1f s", state.attempt_number, error, wait)


def _policy(
    exceptions: tuple[type[BaseException], ...],
    attempts: int | None,
    initial: float,
    maximum: float,
) -> dict[str, Any]:
    return {
        "retry": retry_if_exception_type(exceptions),
        "wait": wait_random_exponential(multiplier=initial, max=maximum),
        "stop": stop_after_attempt(attempts) if attempts else stop_never,
        "before_sleep": _log_before_sleep,
        "reraise": True,
    }


def retrying(
    *exceptions: type[BaseException],
    attempts: int | None = None,
    initial: float = 0.5,
    maximum: float = 30.0,
) -> Retrying:
    """``for attempt in retrying(ConnectError): with attempt: ...``; ``attempts=None`` retries forever."""
    return Retrying(**_policy(exceptions, attempts, initial, maximum))


def async_retrying(
    *exceptions: type[BaseException],
    attempts: int | None = None,
    initial: float = 0.5,
    maximum: float = 30.0,
) -> AsyncRetrying:
    """``async for attempt in async_retrying(ConnectError): with attempt: ...``."""
    return AsyncRetrying(**_policy(exceptions, attempts, initial, maximum))
