"""The photo's own date through every real process: photos with different EXIF dates (and one without)
are served by a local HTTP server, fetched by `python -m downloader --once`, embedded by the real
LitServe embedding service (tiny OpenCLIP, random weights) and written by `python -m indexer
--exit-when-idle` into an embedded Qdrant folder; then `python -m search_app.cli.main search --json` (a real
process too) filters them by date and sorts them newest or oldest first.

Random weights make the ranking by relevance meaningless, so every search here asks for more results
than there are photos: what is checked is which photos a date range keeps and the order by date.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from dyimages_common.images.storage import sha256_hex
from testkit.embedding import run_embedding_service
from testkit.exif_photos import photo
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg

pytestmark = pytest.mark.e2e

PHOTOS = {
    "/2019-summer.jpg": photo(1, taken="2019:06:01 12:00:00", make="Canon", model="Canon EOS 80D"),
    "/2021-spring.png": photo(2, "PNG", taken="2021:03:15 08:30:00", offset="+01:00", make="Apple", model="iPhone 12"),
    "/2023-new-year-eve.webp": photo(3, "WEBP", taken="2023:12:31 23:59:59"),
    "/no-exif.jpg": jpeg(4),  # dated by its download: today
    "/cleared-clock.jpg": photo(5, taken="0000:00:00 00:00:00"),  # garbage date: dated by its download too
}


@dataclass
class Indexed:
    env: dict[str, str]
    server: ImageServer
    started: datetime

    def name_of(self, result: dict[str, Any]) -> str:
        return next(path for path, body in PHOTOS.items() if sha256_hex(body) == result["sha256"])

    def search(self, *args: str) -> list[dict[str, Any]]:
        """`dyimages search ARGS --top-k 20 --json` as its own process; the results in order."""
        answer = subprocess.run(
            [sys.executable, "-m", "search_app.cli.main", "search", *args, "--top-k", "20", "--json"],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert answer.returncode == 0, answer.stderr[-3000:]
        return json.loads(answer.stdout)["results"]

    def names(self, *args: str) -> list[str]:
        return [self.name_of(result) for result in self.search(*args)]


def _run(module: str, *args: str, env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.fixture(scope="module")
def indexed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Indexed]:
    from testkit.rabbit import delete_topology, require_rabbitmq, unique_queue_name

    require_rabbitmq()
    tmp = tmp_path_factory.mktemp("dates")
    images_dir = tmp / "images"
    images_dir.mkdir()
    queue = unique_queue_name("dates")
    started = datetime.now(UTC)
    try:
        with ImageServer() as server, run_embedding_service(images_dir, tmp) as embedding:
            for path, body in PHOTOS.items():
                server.add(path, Route(body=body))
            (tmp / "image_urls.txt").write_text("".join(server.url(path) + "\n" for path in PHOTOS))
            env = {
                "RABBITMQ_HOST": "127.0.0.1",
                "RABBITMQ_USER": "guest",
                "RABBITMQ_PASSWORD": "guest",
                "RABBITMQ_QUEUE": queue,
                "IMAGES_DIR": str(images_dir),
                "STATE_DB": str(images_dir / ".state" / "downloader.sqlite3"),
                "URLS_FILE": str(tmp / "image_urls.txt"),
                "DOWNLOADER_ALLOWED_NETWORKS": "127.0.0.1/32",
                "QDRANT_PATH": str(tmp / "qdrant"),
                "EMBEDDING_SERVICE_URL": embedding.url,
                "INDEXER_IDLE_EXIT_S": "0.5",
                "LOG_LEVEL": "WARNING",
            }
            _run("downloader", "--once", env=env)
            _run("indexer", "--exit-when-idle", env=env)
            yield Indexed(env, server, started)
    finally:
        delete_topology(queue)


def test_every_photo_is_indexed_with_its_date_and_camera(indexed: Indexed) -> None:
    results = {indexed.name_of(r): r for r in indexed.search("a photo")}
    assert set(results) == set(PHOTOS)
    canon = results["/2019-summer.jpg"]
    assert (canon["taken_at"], canon["date"], canon["camera"]) == (
        "2019-06-01T12:00:00Z",
        "2019-06-01T12:00:00Z",
        "Canon EOS 80D",
    )
    assert results["/2021-spring.png"]["taken_at"] == "2021-03-15T08:30:00+01:00"
    assert results["/2021-spring.png"]["camera"] == "Apple iPhone 12"
    for undated in ("/no-exif.jpg", "/cleared-clock.jpg"):
        result = results[undated]
        assert result["taken_at"] is None
        assert result["camera"] is None
        assert result["date"] == result["downloaded_at"]  # no EXIF date: the download's
        assert datetime.fromisoformat(result["date"]) >= indexed.started


def test_a_date_range_keeps_the_photos_taken_in_it(indexed: Indexed) -> None:
    assert set(indexed.names("a photo", "--from", "2020-01-01", "--to", "2023-12-31")) == {
        "/2021-spring.png",
        "/2023-new-year-eve.webp",
    }
    # Both bounds are whole days and inclusive: the last second of the last day is in.
    assert indexed.names("a photo", "--from", "2023-12-31", "--to", "2023-12-31") == ["/2023-new-year-eve.webp"]
    assert indexed.names("a photo", "--to", "2019-06-01") == ["/2019-summer.jpg"]
    assert indexed.names("a photo", "--from", "2019-06-02", "--to", "2021-03-14") == []
    # Photos without an EXIF date count by their download: today.
    today = datetime.now(UTC).date().isoformat()
    assert set(indexed.names("a photo", "--from", today)) == {"/no-exif.jpg", "/cleared-clock.jpg"}


def test_newest_and_oldest_sort_by_the_photos_own_date(indexed: Indexed) -> None:
    newest = indexed.names("a photo", "--order", "newest")
    assert newest[2:] == ["/2023-new-year-eve.webp", "/2021-spring.png", "/2019-summer.jpg"]
    assert set(newest[:2]) == {"/no-exif.jpg", "/cleared-clock.jpg"}
    oldest = indexed.names("a photo", "--order", "oldest", "--to", "2023-12-31")
    assert oldest == ["/2019-summer.jpg", "/2021-spring.png", "/2023-new-year-eve.webp"]


def test_browsing_by_date_needs_no_query(indexed: Indexed) -> None:
    results = indexed.search("--order", "oldest", "--from", "2020-01-01")
    assert [indexed.name_of(r) for r in results][:2] == ["/2021-spring.png", "/2023-new-year-eve.webp"]
    assert len(results) == 4
