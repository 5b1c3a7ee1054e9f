"""A stop asked for while a service is still importing and starting: exit 0 at once.

Importing a service takes seconds (NumPy, qdrant-client, aio-pika, Pillow). Until its event loop
installs its own handlers (:meth:`dyimages_common.process.supervisor.Supervisor.install_signal_handlers`, which
finish the work in flight), SIGTERM would end the process by the default action, which a supervisor
reads as a crash (exit -15, or 143 in a container). At that point nothing has been taken from a queue
or the network, so there is nothing to finish: the clean answer is to leave with status 0. Call this
first thing in a service's ``__main__``, before the heavy imports; the loop's handlers replace it.
"""

from __future__ import annotations

import signal
from types import FrameType


def _leave(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


def exit_cleanly_until_started() -> None:
    """SIGTERM and SIGINT exit 0 until the service's own handlers take over."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _leave)
