"""The status of every URL, kept in step in three places: memory, the state DB and the metrics.

The downloader asks "is this URL finished? how many tries has it had?" millions of times, so the
answer lives in memory; every change is also written to the state (durable) and to the
``dyimages_downloader_urls`` gauge, and summarised in the periodic progress line.
"""

from __future__ import annotations

import logging
from collections import Counter

from downloader import metrics
from downloader.state_db import KnownUrl, Snapshot, UrlStateStore
from dyimages_common.reasons import Reason
from dyimages_common.urls.state import STATUSES

log = logging.getLogger(__name__)


class UrlBook:
    """What the downloader knows about each URL, and the counts per status."""

    def __init__(self, state: UrlStateStore, *, summary_s: float, max_attempts: int) -> None:
        self._state = state
        self._summary_s = summary_s
        self._max_attempts = max_attempts
        self.known: dict[str, KnownUrl] = {}
        self._counts: Counter[str] = Counter()
        self._downloaded_since_summary = 0

    def load(self, snapshot: Snapshot) -> None:
        """Start from what the state held at the start."""
        for status in STATUSES:
            metrics.URLS.labels(status).set(0)
        for url, known in snapshot.urls.items():
            self.set_status(url, known.status, known.attempts)

    def set_status(self, url: str, status: str, attempts: int) -> None:
        previous = self.known.get(url)
        if previous is not None:
            self._counts[previous.status] -= 1
            metrics.URLS.labels(previous.status).set(self._counts[previous.status])
        self.known[url] = KnownUrl(status, attempts)
        self._counts[status] += 1
        metrics.URLS.labels(status).set(self._counts[status])

    def counts(self) -> dict[str, int]:
        return {status: self._counts[status] for status in STATUSES}

    def done(self, url: str, attempts: int) -> None:
        """The URL's image is stored and recorded (its message is on its way)."""
        self.set_status(url, "done", attempts)
        metrics.DOWNLOADED.inc()
        self._downloaded_since_summary += 1

    async def retrying(self, url: str, attempts: int, reason: Reason, detail: str) -> None:
        await self._state.record_retrying(url, attempts, reason, detail)
        self.set_status(url, "retrying", attempts)
        log.info(
            "%s failed (%s), try %d of %d; will retry",
            url,
            reason.with_detail(detail),
            attempts,
            self._max_attempts,
            extra={"url": url, "reason": reason},
        )

    async def failed(self, url: str, attempts: int, reason: Reason, detail: str) -> None:
        await self._state.record_failed(url, attempts, reason, detail)
        self.set_status(url, "failed", attempts)
        metrics.FAILED.labels(reason).inc()
        log.warning("%s failed: %s: %s", url, reason, detail, extra={"url": url, "reason": reason})

    def log_summary(self, unconfirmed: int, *, final: bool = False) -> None:
        rate = self._downloaded_since_summary / self._summary_s
        self._downloaded_since_summary = 0
        counts = self.counts()
        log.info(
            "%s: %s, %d message(s) unconfirmed%s",
            "final" if final else "progress",
            format_counts(counts),
            unconfirmed,
            "" if final else f", {rate:.1f} images/s",
            extra={**counts, "unconfirmed": unconfirmed},
        )


def format_counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{status} {count}" for status, count in counts.items())
