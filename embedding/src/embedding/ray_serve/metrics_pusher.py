"""A replica's side of the metrics hub: its counters sent every few seconds, and at once before /metrics.

A thread of its own does the periodic sending, so a replica busy with a long batch still reports;
a send that fails (the hub restarting) is tried again at the next tick, and the hub keeps the last
snapshot it got, so nothing is counted twice.
"""

from __future__ import annotations

import logging
import threading

from ray.serve.handle import DeploymentHandle

from embedding.ray_serve.compat import replica_name
from embedding.ray_serve.metrics_hub import Family, snapshot

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 10.0


class MetricsPusher:
    def __init__(self, hub: DeploymentHandle, every_s: float) -> None:
        self.hub = hub
        self.every_s = every_s
        self.replica = replica_name()
        self._sent: list[Family] | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._run, name="metrics-push", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            families = snapshot()
            if families == self._sent:
                continue
            try:
                self.hub.record.remote(self.replica, families).result(timeout_s=SEND_TIMEOUT_S)
            except Exception as exc:  # the hub is restarting or busy: the next tick sends again
                log.warning("could not send metrics to the hub: %r", exc)
            else:
                self._sent = families

    async def push_now(self) -> None:
        """Send this replica's counters now (from the event loop), so /metrics includes the latest."""
        families = snapshot()
        await self.hub.record.remote(self.replica, families)
        self._sent = families
