"""Ingest progress: the rate and ETA arithmetic from two samples, and `dyimages stats --watch` against the real
services (RabbitMQ, the embedding service, embedded Qdrant, the downloader's SQLite state)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time

import pytest
from typer.testing import CliRunner

from search_app.cli.main import app
from search_app.ops.progress import IngestProgress, IngestSample, ProgressTracker, duration
from testkit.indexed_library import Library, record_downloads

runner = CliRunner()


def sample(
    at: float, pending: int, downloaded: int, failed: int = 0, indexed: int = 0, queued: int | None = 0
) -> IngestSample:
    return IngestSample(at=at, pending=pending, downloaded=downloaded, failed=failed, indexed=indexed, queued=queued)


@pytest.mark.unit
def test_rates_and_eta_come_from_two_samples() -> None:
    first, last = sample(100.0, pending=100, downloaded=10, failed=0, indexed=5), sample(110.0, 60, 45, 5, 30)
    progress = IngestProgress.between(first, last)
    assert progress.download_rate == pytest.approx(4.0)  # (45 + 5 - 10) URLs finished in 10 s
    assert progress.index_rate == pytest.approx(2.5)  # (30 - 5) points in 10 s
    assert progress.eta_s == pytest.approx(15.0)  # 60 pending at 4/s
    assert progress.downloaded_fraction == pytest.approx(50 / 110)
    assert progress.to_json()["eta_s"] == pytest.approx(15.0)


@pytest.mark.unit
def test_eta_is_unknown_without_movement_and_zero_when_nothing_is_pending() -> None:
    stalled = IngestProgress.between(sample(0, 10, 5), sample(30, 10, 5))
    assert stalled.download_rate == 0.0
    assert stalled.eta_s is None
    assert duration(stalled.eta_s) == "unknown"
    one = IngestProgress.between(sample(0, 10, 5), sample(0, 10, 5))
    assert (one.download_rate, one.index_rate, one.eta_s) == (None, None, None)
    done = IngestProgress.between(sample(0, 3, 5), sample(10, 0, 8))
    assert done.eta_s == 0.0
    assert IngestProgress.between(sample(0, 0, 0), sample(0, 0, 0)).downloaded_fraction == 1.0


@pytest.mark.unit
def test_the_eta_is_until_everything_is_searchable_at_the_indexing_rate() -> None:
    """Downloads are over, 90 messages still wait for an indexer that takes 2 a second: 45 s, not 0."""
    first, last = sample(0.0, 100, 10, queued=10), sample(10.0, 0, 110, queued=90)
    progress = IngestProgress.between(first, last)
    assert progress.download_rate == pytest.approx(10.0)
    assert progress.eta_s == pytest.approx(45.0)  # (110 - 90) - (10 - 10) URLs through in 10 s: 2/s
    assert IngestProgress.between(sample(0, 0, 5, queued=3), sample(5, 0, 5, queued=0)).eta_s == 0.0
    unknown = IngestProgress.between(sample(0, 10, 5, queued=None), sample(10, 5, 10, queued=None))
    assert unknown.eta_s is None  # RabbitMQ not read: the queue's share cannot be known
    assert progress.to_json()["queued"] == 90


@pytest.mark.unit
def test_the_tracker_measures_over_its_window_only() -> None:
    tracker = ProgressTracker(window=3)
    tracker.add(sample(0, 100, 0))  # falls out of the window
    tracker.add(sample(10, 90, 10))
    tracker.add(sample(20, 80, 20))
    progress = tracker.add(sample(30, 50, 50))
    assert progress.download_rate == pytest.approx(2.0)  # (50 - 10) / (30 - 10)
    assert progress.eta_s == pytest.approx(25.0)


@pytest.mark.unit
@pytest.mark.parametrize(("seconds", "text"), [(12.4, "12 s"), (185, "3 min 05 s"), (3720, "1 h 02 min"), (0, "0 s")])
def test_duration(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def add_pending(library: Library, urls: list[str]) -> None:
    with sqlite3.connect(library.state_db) as connection:
        connection.executemany(
            "INSERT INTO urls (url, status, attempts, published, updated_at) "
            "VALUES (?, 'pending', 0, 0, '2026-01-01T00:00:00+00:00')",
            [(url,) for url in urls],
        )


def finish(library: Library, urls: list[str]) -> None:
    with sqlite3.connect(library.state_db) as connection:
        connection.executemany("UPDATE urls SET status = 'done' WHERE url = ?", [(url,) for url in urls])


@pytest.mark.integration
def test_stats_watch_json_follows_the_state_between_refreshes(own_library: Library) -> None:
    """Two refreshes 4 s apart; 2 of 4 pending URLs finish in between: the second line's rate and ETA say so."""
    record_downloads(own_library.state_db, [], {})
    urls = [f"https://progress.example/{n}.jpg" for n in range(4)]
    add_pending(own_library, urls)
    changer = threading.Timer(1.5, finish, args=(own_library, urls[:2]))
    changer.start()
    try:
        result = runner.invoke(app, ["stats", "--watch", "--json", "--samples", "2", "--interval", "4"])
    finally:
        changer.join()
    assert result.exit_code == 0, (result.output, result.exception)
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["schema_version"] == 1
    assert (first["pending"], first["downloaded"], first["download_rate"], first["eta_s"]) == (4, 0, None, None)
    assert (second["pending"], second["downloaded"], second["failed"]) == (2, 2, 0)
    assert second["download_rate"] > 0
    assert second["eta_s"] == pytest.approx(2 / second["download_rate"])
    assert second["downloaded_fraction"] == pytest.approx(0.5)
    assert second["indexed"] == 0


@pytest.mark.integration
def test_stats_watch_shows_a_bar_counts_and_eta(library_environment: Library) -> None:
    started = time.monotonic()
    result = runner.invoke(app, ["stats", "--watch", "--samples", "1"])
    assert result.exit_code == 0, (result.output, result.exception)
    assert time.monotonic() - started < 60  # --samples ends the watch
    assert "14 of 14 URLs finished" in result.stdout  # 13 done (one image has two URLs) and 1 failed
    lines = {line.split()[0]: line for line in result.stdout.splitlines() if line.strip()}
    assert "12 images" in lines["indexed"]
    assert lines["queued"].split()[-1] == "0"  # the indexer took every message
    assert lines["ETA"].split(maxsplit=2)[2].strip() == "0 s"  # ETA (searchable): nothing left to do
