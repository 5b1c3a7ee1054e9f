"""The one retry policy for transient faults: exponential backoff with full jitter, or the server's
Retry-After when that is longer, never past a maximum.

Every retry in the services goes through here (tenacity underneath), so "how long do we wait" has
one answer: a broker or a service coming back, a web server saying 429, a batch the broker did not
confirm. A failure that carries a ``retry_after`` attribute (seconds) is waited for at least that
long; others back off from ``initial``, doubling, jittered, capped at ``maximum``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_never,
    wait_random_exponential,
)
from tenacity.wait import wait_base

log = logging.getLogger(__name__)


class BackoffOrRetryAfter(wait_base):
    """Exponential backoff with full jitter, or the failure's ``retry_after`` when that is longer."""

    def __init__(self, initial: float, maximum: float) -> None:
        self._backoff = wait_random_exponential(multiplier=initial, max=maximum)
        self._maximum = maximum

    def __call__(self, retry_state: RetryCallState) -> float:
        backoff = self._backoff(retry_state)
        outcome = retry_state.outcome
        failure = outcome.exception() if outcome is not None else None
        hinted = getattr(failure, "retry_after", None) or 0.0
        return min(self._maximum, max(backoff, hinted))


def backoff_s(failures: int, *, initial: float = 0.5, maximum: float = 30.0) -> float:
    """The wait after ``failures`` failures in a row, for a loop that retries without one call to wrap
    (the downloader's publisher re-sending what the broker did not confirm)."""
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = max(1, failures)
    return BackoffOrRetryAfter(initial, maximum)(state)


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
    when: Callable[[BaseException], bool] | None,
    log_retries: bool,
) -> dict[str, Any]:
    policy: dict[str, Any] = {
        "retry": retry_if_exception(when) if when is not None else retry_if_exception_type(exceptions),
        "wait": BackoffOrRetryAfter(initial, maximum),
        "stop": stop_after_attempt(attempts) if attempts else stop_never,
        "reraise": True,
    }
    if log_retries:
        policy["before_sleep"] = _log_before_sleep
    return policy


def retrying(
    *exceptions: type[BaseException],
    attempts: int | None = None,
    initial: float = 0.5,
    maximum: float = 30.0,
    when: Callable[[BaseException], bool] | None = None,
    log_retries: bool = True,
) -> Retrying:
    """``for attempt in retrying(ConnectError): with attempt: ...``; ``attempts=None`` retries forever.

    ``when`` (instead of exception types) decides per failure; ``log_retries=False`` for a caller that
    logs each retry in its own words.
    """
    return Retrying(**_policy(exceptions, attempts, initial, maximum, when, log_retries))


def async_retrying(
    *exceptions: type[BaseException],
    attempts: int | None = None,
    initial: float = 0.5,
    maximum: float = 30.0,
    when: Callable[[BaseException], bool] | None = None,
    log_retries: bool = True,
) -> AsyncRetrying:
    """``async for attempt in async_retrying(ConnectError): with attempt: ...``."""
    return AsyncRetrying(**_policy(exceptions, attempts, initial, maximum, when, log_retries))
