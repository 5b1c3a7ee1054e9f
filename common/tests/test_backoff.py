import pytest
from tenacity import RetryCallState

from dyimages_common.backoff import BackoffOrRetryAfter, backoff_s, retrying

pytestmark = pytest.mark.unit


def test_retries_name_the_failure_and_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    for attempt in retrying(ConnectionError, attempts=3, initial=0.001, maximum=0.002):
        with attempt:
            calls += 1
            if calls < 3:
                raise ConnectionError("broker away")
    assert calls == 3
    messages = [r.getMessage() for r in caplog.records if r.name == "dyimages_common.backoff"]
    assert len(messages) == 2
    assert messages[0].startswith("attempt 1 failed (ConnectionError('broker away')); trying again in")


class _Busy(Exception):
    """A failure that carries the server's Retry-After, as the downloader's FetchFailed does."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"retry after {retry_after}")
        self.retry_after = retry_after


def _wait_after(failure: BaseException, *, attempt: int, initial: float, maximum: float) -> float:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    state.set_exception((type(failure), failure, None))
    return BackoffOrRetryAfter(initial, maximum)(state)


def test_a_retry_after_longer_than_the_backoff_is_waited_for_but_never_past_the_maximum() -> None:
    assert _wait_after(_Busy(4.0), attempt=1, initial=0.01, maximum=10.0) == 4.0
    assert _wait_after(_Busy(60.0), attempt=1, initial=0.01, maximum=10.0) == 10.0
    assert _wait_after(ConnectionError(), attempt=1, initial=0.01, maximum=10.0) <= 0.01


def test_the_backoff_doubles_with_jitter_up_to_the_maximum() -> None:
    for failures in range(1, 12):
        waits = [backoff_s(failures, initial=0.5, maximum=10.0) for _ in range(50)]
        assert all(0 <= wait <= min(10.0, 0.5 * 2 ** (failures - 1)) for wait in waits)
    assert max(backoff_s(6, initial=0.5, maximum=10.0) for _ in range(200)) > 5.0  # grows, not stuck at initial


def test_a_predicate_decides_and_no_retry_is_logged_when_the_caller_logs_its_own(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = 0

    def run() -> None:
        nonlocal calls
        for attempt in retrying(
            attempts=5, initial=0.001, maximum=0.002, when=lambda e: "again" in str(e), log_retries=False
        ):
            with attempt:
                calls += 1
                raise ValueError("again" if calls < 2 else "for good")

    with pytest.raises(ValueError, match="for good"):
        run()
    assert calls == 2
    assert not [r for r in caplog.records if r.name == "dyimages_common.backoff"]
