"""One long-running service's lifecycle, shared by the downloader and the indexer.

Both run the same way: SIGTERM or SIGINT sets a stop event; named helper tasks (a publisher, a
feeder, a queue watcher, a progress line) run beside the main work, and one that dies stops the
service instead of leaving it stuck; at the stop, work in flight gets a grace period and is then
cancelled. Writing that once keeps the two services' shutdowns alike and their code about their job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Collection, Coroutine
from typing import Any, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Supervisor:
    """The stop event, the signal handlers and the named helper tasks of one service."""

    def __init__(self, *, on_helper_failed: Callable[[asyncio.Task[Any], BaseException], None] | None = None) -> None:
        self.stop_requested = asyncio.Event()
        self._helpers: list[asyncio.Task[Any]] = []
        self._on_helper_failed = on_helper_failed

    # -- stopping ----------------------------------------------------------------------------------

    def install_signal_handlers(self, message: str | None = None) -> None:
        """SIGTERM and SIGINT request a stop (``message`` is logged at the first, with the signal's name)."""
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self._on_signal, sig, message)

    def remove_signal_handlers(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in SIGNALS:
            loop.remove_signal_handler(sig)

    def _on_signal(self, sig: signal.Signals, message: str | None) -> None:
        if message is not None and not self.stop_requested.is_set():
            log.info("%s received: %s", sig.name, message)
        self.stop()

    def stop(self) -> None:
        self.stop_requested.set()

    # -- helper tasks ------------------------------------------------------------------------------

    def start(self, name: str, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        """A named helper task; if it dies of an exception, ``on_helper_failed`` hears of it."""
        task = asyncio.create_task(coroutine, name=name)
        self._helpers.append(task)
        if self._on_helper_failed is not None:
            task.add_done_callback(self._helper_done)
        return task

    def _helper_done(self, task: asyncio.Task[Any]) -> None:
        if not task.cancelled() and task.exception() is not None and self._on_helper_failed is not None:
            self._on_helper_failed(task, task.exception())  # type: ignore[arg-type]

    @property
    def helpers(self) -> list[asyncio.Task[Any]]:
        return list(self._helpers)

    def helper(self, name: str) -> asyncio.Task[Any]:
        return next(task for task in self._helpers if task.get_name() == name)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``; wake early on a stop request; re-raise if a helper task died."""
        stopper = asyncio.ensure_future(self.stop_requested.wait())
        try:
            await asyncio.wait([stopper, *self._helpers], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopper.cancel()
        for helper in self._helpers:
            if helper.done():
                helper.result()  # raises what killed it
                raise RuntimeError(f"{helper.get_name()} stopped unexpectedly")

    async def unless_stopped(self, coroutine: Coroutine[Any, Any, T]) -> T | None:
        """Run a step that may wait for a long time (a service down), but not past a stop request."""
        task = asyncio.ensure_future(coroutine)
        stopping = asyncio.ensure_future(self.stop_requested.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        return None

    async def cancel_helpers(self) -> None:
        """Cancel every helper task and wait until they are gone (their errors are not raised here)."""
        for task in self._helpers:
            task.cancel()
        await asyncio.gather(*self._helpers, return_exceptions=True)


async def finish_within(tasks: Collection[asyncio.Task[Any]], grace_s: float) -> None:
    """Let ``tasks`` finish for up to ``grace_s`` seconds, then cancel what is left and wait for it."""
    if not tasks:
        return
    _, unfinished = await asyncio.wait(set(tasks), timeout=grace_s)
    for task in unfinished:
        task.cancel()
    await asyncio.gather(*unfinished, return_exceptions=True)


async def every(seconds: float, tick: Callable[[], None]) -> None:
    """Call ``tick`` every ``seconds`` until cancelled (the progress line of a service)."""
    while True:
        await asyncio.sleep(seconds)
        tick()
