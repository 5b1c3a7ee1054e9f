"""`dyimages` commands against the real services: RabbitMQ, the embedding service, the indexer, embedded Qdrant."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.messaging.rabbit import queue_depths
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings, load_settings
from search_app.cli.main import app
from testkit.index_points import open_index
from testkit.indexed_library import (
    COLLECTION,
    Library,
    PictureSpec,
    dead_letter,
    index_pictures,
    make_picture,
    record_downloads,
    run_indexer,
)
from testkit.procs import free_port

pytestmark = pytest.mark.integration

runner = CliRunner()
QUERY = "a red bicycle leaning on a wall"
HIT_FIELDS = {
    "rank",
    "score",
    "id",
    "sha256",
    "path",
    "url",
    "urls",
    "domains",
    "content_type",
    "width",
    "height",
    "bytes",
    "downloaded_at",
    "indexed_at",
    "model",
    "taken_at",
    "camera",
    "orientation",
    "library_paths",
    "folders",
    "date",
    "similar",
}


def dyimages(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    return result.stdout if code == 0 else result.stderr


def dyimages_json(*args: str) -> dict:
    data = json.loads(dyimages(*args, "--json"))
    assert data["schema_version"] == 1
    return data


def text_oracle(library: Library, text: str) -> list[str]:
    with EmbeddingClient(library.env["EMBEDDING_SERVICE_URL"]) as client:
        return library.nearest(client.embed_texts([text])[0])


def test_search_json_is_the_index_order_with_the_documented_fields(library_environment: Library) -> None:
    expected = text_oracle(library_environment, QUERY)
    data = dyimages_json("search", QUERY, "--top-k", "5")
    assert data["collection"] == COLLECTION
    assert data["query"] == {
        "text": QUERY,
        "positive": QUERY,
        "negatives": [],
        "image": None,
        "top_k": 5,
        "offset": 0,
        "filters": {
            "domains": [],
            "content_types": [],
            "min_width": 0,
            "min_height": 0,
            "min_score": None,
            "collapse": None,
            "match_words": False,
            "date_from": None,
            "date_to": None,
            "order": "relevance",
            "folder": None,
        },
    }
    results = data["results"]
    assert [r["sha256"] for r in results] == expected[:5]
    assert all(set(r) == HIT_FIELDS for r in results)
    assert [r["rank"] for r in results] == [1, 2, 3, 4, 5]
    first = library_environment.by_sha(results[0]["sha256"])
    assert results[0]["path"] == first.path
    assert results[0]["urls"] == list(first.urls)
    assert results[0]["model"].startswith("dy-tiny")
    page_two = dyimages_json("search", QUERY, "--top-k", "5", "--offset", "5")["results"]
    assert [r["sha256"] for r in page_two] == expected[5:10]


def test_search_text_output_and_default_top_k(library_environment: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TOP_K", "3")
    out = dyimages("search", QUERY)
    first = library_environment.by_sha(text_oracle(library_environment, QUERY)[0])
    assert first.sha256[:12] in out
    assert len(dyimages_json("search", QUERY)["results"]) == 3


def test_search_filters_and_negative_terms(library_environment: Library) -> None:
    art = dyimages_json("search", QUERY, "--domain", "www.art.example.org")["results"]
    assert {r["domains"][0] for r in art} == {"art.example.org"}
    assert len(art) == 3
    png = dyimages_json("search", QUERY, "--format", "png")["results"]
    assert [r["content_type"] for r in png] == ["image/png"]
    wide = dyimages_json("search", QUERY, "--min-width", "300", "--min-height", "200")["results"]
    assert [(r["width"], r["height"]) for r in wide] == [(320, 240), (320, 240)]
    negative = dyimages_json("search", 'beach -people -"parked cars"')
    assert negative["query"]["positive"] == "beach"
    assert negative["query"]["negatives"] == ["people", "parked cars"]
    assert "unknown --format tiff" in dyimages("search", QUERY, "--format", "tiff", code=2)


def test_search_help_names_every_accepted_format() -> None:
    """--format takes each stored format (HEIC and AVIF phone photos too) and its help names them."""
    text = runner.invoke(app, ["search", "--help"], env={"COLUMNS": "240"}).output
    assert {"jpeg", "png", "webp", "gif", "heic", "avif"} <= set(re.findall(r"[a-z]+", text))


def test_search_by_image_file_finds_that_image_first(library_environment: Library, tmp_path: Path) -> None:
    picture = library_environment.pictures[3]
    query = tmp_path / "query.jpg"
    query.write_bytes(picture.data)
    data = dyimages_json("search", "--image", str(query), "--top-k", "2")
    assert data["results"][0]["sha256"] == picture.sha256
    assert data["results"][0]["score"] == pytest.approx(1.0, abs=1e-3)
    combined = dyimages_json("search", QUERY, "--image", str(query))
    assert combined["query"]["image"] == str(query)
    assert "cannot read" in dyimages("search", "--image", str(tmp_path / "missing.jpg"), code=2)
    assert "nothing to search for" in dyimages("search", code=2)


def test_stats_json(library_environment: Library) -> None:
    data = dyimages_json("stats")
    serving = data["index"]["serving"]  # the collection behind the alias QDRANT_COLLECTION
    assert serving.startswith(f"{COLLECTION}_")
    assert data["index"] == {
        "collection": COLLECTION,
        "exists": True,
        "serving": serving,
        "building": None,
        "points": 12,
        "model": "dy-tiny",
        "weights": "none",
        "dim": 512,
        "error": None,
    }
    assert data["embedding"]["model"] == "dy-tiny"
    assert data["embedding"]["device"] == "cpu"
    assert data["embedding"]["healthy"] is True
    assert data["queue"]["queued"] == 0
    assert data["queue"]["dead_lettered"] == 0
    assert data["urls"]["counts"] == {"pending": 0, "retrying": 0, "done": 13, "failed": 1}
    text = dyimages("stats")
    assert "points" in text
    assert "12" in text


def test_stats_reports_a_service_down_and_exits_3(
    library_environment: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    result = runner.invoke(app, ["stats", "--json"])
    assert result.exit_code == 3
    data = json.loads(result.stdout)
    assert data["index"]["points"] == 12  # the other parts still answer
    assert data["embedding"]["healthy"] is False
    assert "unreachable" in data["embedding"]["error"]


def test_search_with_the_embedding_service_down_is_one_plain_line(
    library_environment: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EMBEDDING_SERVICE_URL", f"http://127.0.0.1:{free_port()}")
    message = dyimages("search", QUERY, code=3)
    assert "embedding service" in message
    assert "not answering" in message


def test_qdrant_folder_in_use_and_bad_settings(library_environment: Library, monkeypatch: pytest.MonkeyPatch) -> None:
    holder = open_index(library_environment.qdrant_path)
    try:
        assert "in use by another process" in dyimages("search", QUERY, code=3)
    finally:
        holder.close()
    monkeypatch.setenv("APP_TOP_K", "lots")
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 2
    assert "APP_TOP_K='lots'" in result.stderr


def test_empty_index(own_library: Library) -> None:
    data = dyimages_json("search", QUERY)
    assert data["results"] == []
    stats = dyimages_json("stats")
    assert stats["index"]["exists"] is False
    assert stats["index"]["points"] is None


def test_failures_lists_downloads_and_dead_letters_without_consuming_them(own_library: Library) -> None:
    record_downloads(own_library.state_db, [], {"https://x.example/a.jpg": "not_an_image: cannot identify image data"})
    dead_letter(own_library, b'{"sha256": "' + b"ab" * 32 + b'", "url": "https://x.example/b.jpg"}', "embed_failed")
    dead_letter(own_library, b"not json", "invalid_json")
    for _ in range(2):  # looking twice shows the same messages: nothing was consumed
        data = dyimages_json("failures")
        assert data["downloads"] == [
            {
                "url": "https://x.example/a.jpg",
                "reason": "not_an_image: cannot identify image data",
                "explanation": Reason.NOT_AN_IMAGE.explanation,
                "attempts": 3,
                "updated_at": data["downloads"][0]["updated_at"],
                "hint": None,  # only a refused address has one (downloader/tests/test_refetch.py)
            }
        ]
        letters = data["dead_letters"]
        assert [(d["reason"], d["url"], d["sha256"]) for d in letters] == [
            ("embed_failed", "https://x.example/b.jpg", "ab" * 32),
            ("invalid_json", None, None),
        ]
        assert letters[1]["body"] == "not json"
        assert letters[1]["explanation"] == Reason.INVALID_JSON.explanation
    settings = load_settings(
        RabbitSettings, rabbitmq_host="127.0.0.1", rabbitmq_queue=own_library.env["RABBITMQ_QUEUE"]
    )
    assert asyncio.run(queue_depths(settings))["dead_lettered"] == 2
    text = dyimages("failures")
    assert "embed_failed" in text
    assert "not_an_image" in text
    assert f"({Reason.INVALID_JSON.explanation})" in text  # each reason says what it means


def test_retry_takes_only_known_reasons_and_old_rows_are_retried_by_what_they_read_as(own_library: Library) -> None:
    """A row recorded before the reasons were a type stays retryable: http_418 as http_4xx, a word this
    version does not know as unknown. A reason no download fails with is refused, listing the known ones."""
    teapot, gremlin = "https://x.example/teapot.jpg", "https://x.example/gremlin.jpg"
    record_downloads(own_library.state_db, [], {teapot: "http_418: 418 I'm a Teapot", gremlin: "gremlins: old"})
    refused = dyimages("retry", "--reason", "gremlins", code=2)
    assert "not a reason a download fails with" in refused
    assert "http_4xx" in refused
    assert "embed_timeout" not in refused  # a dead letter's reason: retry does not take it
    assert dyimages_json("retry", "--reason", "http_4xx")["matching_urls"] == [teapot]
    assert dyimages_json("retry", "--reason", "unknown")["matching_urls"] == [gremlin]
    shown = {row["url"]: row["explanation"] for row in dyimages_json("failures")["downloads"]}
    assert shown == {teapot: Reason.HTTP_4XX.explanation, gremlin: Reason.UNKNOWN.explanation}


def test_drop_needs_yes_then_reindex_restores_every_url(own_library: Library, tmp_path: Path) -> None:
    specs = [
        PictureSpec(7101, ("https://a.example/7101.jpg",)),
        PictureSpec(7102, ("https://a.example/7102.jpg", "https://b.example/same-as-7102.jpg")),
        PictureSpec(7103, ("https://a.example/7103.png",), fmt="png"),
    ]
    pictures = index_pictures(own_library, specs, tmp_path / "indexer-1.log")
    record_downloads(own_library.state_db, pictures, {})
    assert dyimages_json("stats")["index"]["points"] == 3

    assert "--yes" in dyimages("drop", code=1)
    assert dyimages_json("stats")["index"]["points"] == 3
    assert f"deleted {COLLECTION}_" in dyimages("drop", "--yes")  # the collection behind the alias
    assert dyimages_json("stats")["index"]["exists"] is False

    # Embedded mode: one process at a time; the indexer holding the folder is said in one line.
    holder = open_index(own_library.qdrant_path)
    try:
        assert "in use by another process" in dyimages("reindex", code=3)
    finally:
        holder.close()
    # An image on disk that the downloader never recorded cannot be republished: it is listed, not lost.
    stray = make_picture(own_library.images_dir, PictureSpec(7199, ("https://unknown.example/x.jpg",)))
    result = runner.invoke(app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert "republished 3 of" in result.stdout
    assert "(4 messages, one per source URL)" in result.stdout
    assert "dyimages reindex --finish" in result.stdout  # embedded: it stops after publishing
    assert f"skipped {stray.path}: no source URL known" in result.stderr
    assert dyimages_json("stats")["queue"]["queued"] == 4

    run_indexer(own_library.env, tmp_path / "indexer-2.log")
    finished = runner.invoke(app, ["reindex", "--finish"])
    assert finished.exit_code == 0, finished.output
    assert f"{COLLECTION} now searches {COLLECTION}_" in finished.stdout
    stats = dyimages_json("stats")
    assert stats["index"]["points"] == 3
    assert stats["queue"]["queued"] == 0
    results = dyimages_json("search", "anything", "--top-k", "10")["results"]
    by_sha = {r["sha256"]: r for r in results}
    assert set(by_sha) == {p.sha256 for p in pictures}
    for picture in pictures:
        assert sorted(by_sha[picture.sha256]["urls"]) == sorted(picture.urls)
        assert by_sha[picture.sha256]["width"] == picture.width
        assert by_sha[picture.sha256]["content_type"] == picture.content_type


def test_reindex_without_downloader_state_uses_the_urls_in_the_index(
    own_library: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    indexed = index_pictures(
        own_library,
        [PictureSpec(7201, ("https://a.example/7201.jpg", "https://c.example/7201.jpg"))],
        tmp_path / "i.log",
    )
    assert len(indexed) == 1
    assert not own_library.state_db.exists()
    before = dyimages_json("stats")["index"]
    result = runner.invoke(app, ["reindex"])
    assert result.exit_code == 0, result.output
    assert "republished 1 of" in result.stdout
    assert "(2 messages, one per source URL)" in result.stdout
    during = dyimages_json("stats")
    assert during["queue"]["queued"] == 2
    assert during["index"]["serving"] == before["serving"]  # the old collection serves while the new one fills
    assert during["index"]["building"] not in (None, before["serving"])
    assert [hit["sha256"] for hit in dyimages_json("search", "anything")["results"]] == [indexed[0].sha256]
    incomplete = runner.invoke(app, ["reindex", "--finish"])  # the indexer has not run: nothing is swapped
    assert incomplete.exit_code == 1, incomplete.output
    assert "1 of 1 images are not in the new collection yet" in incomplete.stderr
    assert dyimages_json("stats")["index"]["serving"] == before["serving"]

    run_indexer(own_library.env, tmp_path / "i2.log")
    assert runner.invoke(app, ["reindex", "--finish"]).exit_code == 0
    after = dyimages_json("stats")["index"]
    assert (after["serving"], after["building"], after["points"]) == (during["index"]["building"], None, 1)
    (hit,) = dyimages_json("search", "anything")["results"]
    assert sorted(hit["urls"]) == ["https://a.example/7201.jpg", "https://c.example/7201.jpg"]

    monkeypatch.setenv("RABBITMQ_PORT", str(free_port()))
    assert "RabbitMQ" in dyimages("reindex", code=3)
