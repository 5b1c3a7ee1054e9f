import pytest

from dyimages_common.retry import retrying

pytestmark = pytest.mark.unit


def test_retries_name_the_failure_and_the_wait(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0
    for attempt in retrying(ConnectionError, attempts=3, initial=0.001, maximum=0.002):
        with attempt:
            calls += 1
            if calls < 3:
                raise ConnectionError("broker away")
    assert calls == 3
    messages = [r.getMessage() for r in caplog.records if r.name == "dyimages_common.retry"]
    assert len(messages) == 2
    assert messages[0].startswith("attempt 1 failed (ConnectionError('broker away')); trying again in")
