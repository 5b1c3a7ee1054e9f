"""The shared service lifecycle: signals stop, a dead helper is heard of, the grace period ends work."""

import asyncio
import logging
import os
import signal

import pytest

from dyimages_common.process.supervisor import Supervisor, every, finish_within

pytestmark = pytest.mark.unit


async def test_sigterm_requests_a_stop_and_wakes_a_sleeper(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="dyimages_common.process.supervisor")
    supervisor = Supervisor()
    supervisor.install_signal_handlers("finishing, then stopping")
    try:
        sleeper = asyncio.create_task(supervisor.sleep(60))
        await asyncio.sleep(0)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(sleeper, timeout=5)  # woken by the stop, not after 60 s
    finally:
        supervisor.remove_signal_handlers()
    assert supervisor.stop_requested.is_set()
    assert "SIGTERM received: finishing, then stopping" in caplog.text


async def test_a_helper_that_dies_is_reported_and_re_raised_by_sleep() -> None:
    heard: list[tuple[str, BaseException]] = []
    supervisor = Supervisor(on_helper_failed=lambda task, error: heard.append((task.get_name(), error)))

    async def broken() -> None:
        raise ValueError("publisher broke")

    supervisor.start("publisher", broken())
    with pytest.raises(ValueError, match="publisher broke"):
        await supervisor.sleep(60)
    assert [(name, str(error)) for name, error in heard] == [("publisher", "publisher broke")]


async def test_a_helper_that_returns_is_an_error_too() -> None:
    supervisor = Supervisor()

    async def quits() -> None:
        return None

    supervisor.start("feeder", quits())
    with pytest.raises(RuntimeError, match="feeder stopped unexpectedly"):
        await supervisor.sleep(60)


async def test_unless_stopped_gives_up_a_long_step_at_the_stop() -> None:
    supervisor = Supervisor()
    waiting = asyncio.Event()

    async def service_down() -> int:
        waiting.set()
        await asyncio.sleep(60)
        return 1

    step = asyncio.create_task(supervisor.unless_stopped(service_down()))
    await waiting.wait()
    supervisor.stop()
    assert await asyncio.wait_for(step, timeout=5) is None
    assert await supervisor.unless_stopped(asyncio.sleep(0, result=7)) == 7


async def test_finish_within_lets_quick_work_finish_and_cancels_the_rest() -> None:
    quick = asyncio.create_task(asyncio.sleep(0.01, result="done"))
    stuck = asyncio.create_task(asyncio.sleep(60))
    await finish_within({quick, stuck}, grace_s=0.5)
    assert quick.result() == "done"
    assert stuck.cancelled()


async def test_cancel_helpers_and_every() -> None:
    supervisor = Supervisor()
    ticks: list[int] = []
    ticker = supervisor.start("summary", every(0.01, lambda: ticks.append(1)))
    while len(ticks) < 3:
        await asyncio.sleep(0.01)
    await supervisor.cancel_helpers()
    assert ticker.cancelled()
