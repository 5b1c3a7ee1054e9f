"""`dyimages prune` against real components: images indexed by the real indexer and embedding service into
embedded Qdrant, the downloader's SQLite state, a URL file on disk and the shared Redis server.

The pictures use seeds no other test uses, so removing their files from the shared images folder (the one
the session's embedding service reads) touches nothing another test relies on.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

from search_app.cli.main import app
from search_app.search.cache import PREFIX
from search_app.search.cache_entries import GENERATION
from testkit.indexed_library import Library, PictureSpec, index_pictures, record_downloads

pytestmark = pytest.mark.integration

runner = CliRunner()
SITE = "https://prune.example"
REDIS_URL = "redis://127.0.0.1:6379/0"  # the shared server; the test fails when it is not running


def prune(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, ["prune", *args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result.stdout if code == 0 else result.stderr


def prune_json(*args: str) -> dict:
    data = json.loads(prune(*args, "--json"))
    assert data["schema_version"] == 1
    return data


def indexed_shas(library: Library) -> set[str]:
    index = library.open_index()
    try:
        return {point.sha256 for _, point in index.points()}
    finally:
        index.close()


def state_urls(library: Library) -> set[str]:
    with sqlite3.connect(library.state_db) as connection:
        return {row[0] for row in connection.execute("SELECT url FROM urls")}


@pytest.fixture
def pruned_library(own_library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Library:
    """Five images: kept (listed), two URLs with one still listed, gone (no URL listed), and one whose point
    knows only a removed URL while the state has a listed URL of the same bytes (not merged yet)."""
    specs = [
        PictureSpec(9301, (f"{SITE}/kept.jpg",)),
        PictureSpec(9302, (f"{SITE}/two-a.jpg", f"{SITE}/two-b.jpg")),
        PictureSpec(9303, (f"{SITE}/gone.jpg",)),
        PictureSpec(9304, (f"{SITE}/also-kept.jpg",)),
        PictureSpec(9305, (f"{SITE}/old-name.jpg",)),
    ]
    pictures = index_pictures(own_library, specs, tmp_path / "indexer.log")
    record_downloads(own_library.state_db, pictures, {})
    with sqlite3.connect(own_library.state_db) as connection:  # a second URL of 9305's bytes, not in the point yet
        connection.execute(
            "INSERT INTO urls (url, status, sha256, path, attempts, published, updated_at) "
            "VALUES (?, 'done', ?, ?, 1, 0, '2026-01-01T00:00:00+00:00')",
            (f"{SITE}/new-name.jpg", pictures[4].sha256, pictures[4].path),
        )
    urls_file = tmp_path / "image_urls.txt"
    urls_file.write_text(
        f"# the list\n{SITE}/kept.jpg\n{SITE}/two-b.jpg  # one of two\n{SITE}/also-kept.jpg\n{SITE}/new-name.jpg\n"
    )
    monkeypatch.setenv("URLS_FILE", str(urls_file))
    return own_library


def test_dry_run_lists_only_images_whose_every_url_left_and_removes_nothing(pruned_library: Library) -> None:
    library = pruned_library
    gone = library.pictures[2]
    before = indexed_shas(library)
    data = prune_json()
    assert data["removed"] is False
    assert data["listed_urls"] == 4
    assert data["indexed"] == 5
    assert data["images"] == [{"sha256": gone.sha256, "path": gone.path, "urls": [f"{SITE}/gone.jpg"]}]
    text = prune()
    assert "would remove 1 of 5 indexed images" in text
    assert gone.sha256[:12] in text
    assert indexed_shas(library) == before  # a dry run removes nothing
    assert (library.images_dir / gone.path).is_file()
    assert f"{SITE}/gone.jpg" in state_urls(library)


def test_yes_removes_the_points_files_state_rows_and_cached_pages(pruned_library: Library) -> None:
    library = pruned_library
    gone = library.pictures[2]
    with redis.Redis.from_url(REDIS_URL) as cache:
        before = int(cache.get(PREFIX + GENERATION) or 0)
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("REDIS_URL", REDIS_URL)
            data = prune_json("--yes")
        assert data["removed"] is True
        assert [image["sha256"] for image in data["images"]] == [gone.sha256]
        # Every result page cached before is keyed by an older generation (test_query_cache_safety.py).
        assert int(cache.get(PREFIX + GENERATION) or 0) > before
    assert indexed_shas(library) == {p.sha256 for p in library.pictures} - {gone.sha256}
    assert not (library.images_dir / gone.path).exists()
    assert all((library.images_dir / p.path).is_file() for p in library.pictures if p is not gone)
    assert f"{SITE}/gone.jpg" not in state_urls(library)
    assert f"{SITE}/two-a.jpg" in state_urls(library)  # an image kept keeps every row
    assert prune_json("--yes")["images"] == []  # nothing left to remove: a second run is a no-op


def test_an_emptied_missing_or_truncated_url_file_removes_nothing(
    pruned_library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    library = pruned_library
    before = indexed_shas(library)
    urls_file = tmp_path / "image_urls.txt"
    urls_file.write_text("# only comments left\n\n")
    assert "lists no URL" in prune("--yes", code=1)
    urls_file.write_text(f"{SITE}/kept.jpg\n")  # truncated: 4 of 5 images would go
    message = prune("--yes", code=1)
    assert "would remove 4 of 5 indexed images, more than 50%" in message
    monkeypatch.setenv("URLS_FILE", str(tmp_path / "missing.txt"))
    assert "cannot be read" in prune("--yes", code=2)
    assert indexed_shas(library) == before
    assert all((library.images_dir / p.path).is_file() for p in library.pictures)
    monkeypatch.setenv("URLS_FILE", str(urls_file))
    assert len(prune_json("--max-share", "0.8")["images"]) == 4  # the operator may raise the limit
