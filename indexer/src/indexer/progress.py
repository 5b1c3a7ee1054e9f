"""The indexer's periodic progress line and its final summary: what was indexed and dead-lettered."""

from __future__ import annotations

import time


class Progress:
    """Counts for the periodic progress line."""

    def __init__(self) -> None:
        self.indexed = 0
        self.dead_lettered = 0
        self.started = time.monotonic()
        self._last = (self.started, 0, 0)

    def line(self) -> tuple[str, tuple[object, ...]] | None:
        """The next progress line, or None if nothing happened since the last one."""
        now = time.monotonic()
        then, indexed, dead = self._last
        if (indexed, dead) == (self.indexed, self.dead_lettered):
            return None
        self._last = (now, self.indexed, self.dead_lettered)
        rate = (self.indexed - indexed) / max(now - then, 1e-6)
        return "indexed %d (+%d, %.1f images/s), dead-lettered %d", (
            self.indexed,
            self.indexed - indexed,
            rate,
            self.dead_lettered,
        )

    def summary(self) -> tuple[str, tuple[object, ...]]:
        elapsed = time.monotonic() - self.started
        return "indexed %d, dead-lettered %d in %.1f s (%.1f images/s)", (
            self.indexed,
            self.dead_lettered,
            elapsed,
            self.indexed / max(elapsed, 1e-6),
        )
