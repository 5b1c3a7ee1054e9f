"""Ingest progress for people: pending → downloaded → indexed, with a rate and an ETA.

One :class:`IngestSample` is what the status already reads (the downloader's URL counts and the points in
the index) at one moment; two samples give the rates. Shared by the status page (a fragment that refreshes
itself) and ``dyimages stats --watch``, so both say the same numbers.

* ``finished`` URLs are ``done`` or ``failed``: both leave the downloader's to-do list;
* the download rate is finished URLs per second between the oldest and the newest sample kept
  (a window, :data:`WINDOW`, so one slow poll does not swing the ETA);
* a URL is *through* once nothing is left to do for it: failed, or done and its message no longer waiting
  in the indexer's queue (indexed, so searchable). The ETA is the time until everything is searchable: the
  URLs still to download plus the messages still queued for the indexer, at the rate URLs go through over
  the window (the slower of downloading and indexing sets it). ``None`` while nothing went through in the
  window or the queue could not be read (unknown, never "forever"), 0 when nothing is left;
* the index rate is new points per second over the same window; points are distinct images, so several
  URLs of the same bytes count once there.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

from search_app.ops.status import Status

WINDOW = 30  # samples kept for the rates


@dataclass(frozen=True)
class IngestSample:
    at: float  # seconds on a monotonic clock
    pending: int  # pending + retrying URLs
    downloaded: int  # done URLs
    failed: int
    indexed: int  # points in the index
    queued: int | None = None  # messages waiting for the indexer; None: RabbitMQ could not be read

    @property
    def total(self) -> int:
        return self.pending + self.downloaded + self.failed

    @property
    def finished(self) -> int:
        return self.downloaded + self.failed

    @property
    def through(self) -> int | None:
        """URLs with nothing left to do: failed, or downloaded and indexed (no longer queued)."""
        return None if self.queued is None else self.finished - self.queued

    @property
    def remaining(self) -> int | None:
        """URLs not yet searchable: to download, or downloaded and waiting for the indexer."""
        return None if self.queued is None else self.pending + self.queued

    @classmethod
    def from_status(cls, status: Status, at: float) -> IngestSample:
        counts = status.urls.counts
        return cls(
            at=at,
            pending=counts.get("pending", 0) + counts.get("retrying", 0),
            downloaded=counts.get("done", 0),
            failed=counts.get("failed", 0),
            indexed=status.index.points or 0,
            queued=status.queue.queued,
        )


@dataclass(frozen=True)
class IngestProgress:
    sample: IngestSample
    download_rate: float | None  # finished URLs per second; None with one sample
    index_rate: float | None  # new points per second; None with one sample
    eta_s: float | None  # seconds until every known URL is searchable (or failed); None when unknown

    @property
    def downloaded_fraction(self) -> float:
        """Share of the known URLs the downloader is done with (stored or failed for good)."""
        return self.sample.finished / self.sample.total if self.sample.total else 1.0

    @classmethod
    def between(cls, first: IngestSample, last: IngestSample) -> IngestProgress:
        elapsed = last.at - first.at
        if elapsed <= 0:
            return cls(last, None, None, 0.0 if last.remaining == 0 else None)
        download_rate = max(0.0, (last.finished - first.finished) / elapsed)
        index_rate = max(0.0, (last.indexed - first.indexed) / elapsed)
        eta: float | None = None
        if last.remaining == 0:
            eta = 0.0
        elif last.remaining is not None and first.through is not None and last.through is not None:
            rate = (last.through - first.through) / elapsed
            eta = last.remaining / rate if rate > 0 else None
        return cls(last, download_rate, index_rate, eta)

    def to_json(self) -> dict[str, Any]:
        s = self.sample
        return {
            "pending": s.pending,
            "downloaded": s.downloaded,
            "failed": s.failed,
            "indexed": s.indexed,
            "queued": s.queued,
            "downloaded_fraction": self.downloaded_fraction,
            "download_rate": self.download_rate,
            "index_rate": self.index_rate,
            "eta_s": self.eta_s,
        }


class ProgressTracker:
    """The last :data:`WINDOW` samples; :meth:`add` returns the progress over them."""

    def __init__(self, window: int = WINDOW) -> None:
        self.samples: deque[IngestSample] = deque(maxlen=window)

    def add(self, sample: IngestSample) -> IngestProgress:
        self.samples.append(sample)
        return IngestProgress.between(self.samples[0], sample)


def duration(seconds: float | None) -> str:
    """``1 h 02 min``, ``3 min 05 s``, ``12 s``; ``unknown`` for None."""
    if seconds is None:
        return "unknown"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"
