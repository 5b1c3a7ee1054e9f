"""The minimum score (hide weak matches) in the search functions, the CLI and the UI, against the library
indexed by the real indexer and embedding service, in embedded Qdrant.

With random model weights no score means "relevant"; the test takes the scores the index gives without a
threshold and puts the threshold between two of them: what scored above it must stay, in the same order,
and everything below must vanish, on every page.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from typer.testing import CliRunner

import search_app
from dyimages_common.embeddings.client import EmbeddingClient
from search_app.cli.main import app
from search_app.search.cache import QueryCache, ServiceIdentity
from search_app.search.engine import search
from search_app.search.model import Filters, Query
from search_app.search.vectors import ServiceEmbedder
from testkit.app_driver import search_json, searching_by_image
from testkit.indexed_library import Library

pytestmark = pytest.mark.integration

runner = CliRunner()
REDIS_URL = "redis://127.0.0.1:6379/0"  # the shared server; these tests fail when it is not running
APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")


def threshold_between(scores: list[float]) -> tuple[int, float]:
    """(how many results score above the threshold, the threshold): the middle of the widest gap between
    two neighbouring scores after the first, so rounding cannot put a score on the wrong side."""
    gaps = [(scores[k - 1] - scores[k], k) for k in range(2, len(scores))]
    _, kept = max(gaps)
    return kept, (scores[kept - 1] + scores[kept]) / 2


def query_image(library: Library, tmp_path: Path) -> Path:
    path = tmp_path / "query.jpg"
    path.write_bytes(library.pictures[3].data)
    return path


def test_cli_min_score_keeps_the_strong_matches_in_order_and_pages_within_them(
    library_environment: Library, tmp_path: Path
) -> None:
    image = str(query_image(library_environment, tmp_path))
    everything = search_json("--image", image, "--top-k", "12")["results"]
    assert len(everything) == 12
    kept, threshold = threshold_between([hit["score"] for hit in everything])

    data = search_json("--image", image, "--top-k", "12", "--min-score", str(threshold))
    assert data["query"]["filters"]["min_score"] == pytest.approx(threshold)
    assert [hit["sha256"] for hit in data["results"]] == [hit["sha256"] for hit in everything[:kept]]
    assert data["results"][0]["sha256"] == library_environment.pictures[3].sha256  # the best match stays
    assert all(hit["score"] >= threshold for hit in data["results"])

    pages: list[str] = []
    for offset in range(0, 14, 2):  # pages of two, past the last strong match
        page = search_json("--image", image, "--top-k", "2", "--offset", str(offset), "--min-score", str(threshold))
        pages += [hit["sha256"] for hit in page["results"]]
    assert pages == [hit["sha256"] for hit in everything[:kept]]  # nothing repeated, skipped or weak

    assert search_json("--image", image)["query"]["filters"]["min_score"] is None
    top = search_json("--image", image, "--min-score", "0.999")["results"]
    assert [hit["sha256"] for hit in top] == [library_environment.pictures[3].sha256]  # only the image itself


def test_cli_min_score_text_output_says_why_nothing_is_shown(library_environment: Library) -> None:
    result = runner.invoke(app, ["search", "a red bicycle", "--min-score", "0.999"])
    assert result.exit_code == 0, result.output
    assert "no results scoring at least 0.999" in result.stdout
    bad = runner.invoke(app, ["search", "a red bicycle", "--min-score", "1.5"])
    assert bad.exit_code == 2  # typer refuses a score outside [-1, 1]


def test_ui_minimum_score_hides_weak_matches(library_environment: Library, tmp_path: Path) -> None:
    library = library_environment
    picture = library.pictures[3]
    with searching_by_image(picture.data) as at:
        everything = at.session_state["hits"]
        assert len(everything) == 12
        kept, threshold = threshold_between([hit.score for hit in everything])
        assert threshold > 0, "an image query's neighbours score above 0 (the slider starts at 0)"

        at.slider(key="min_score").set_value(threshold).run()
        assert not at.exception, at.exception
        shown = at.session_state["hits"]
        assert [hit.sha256 for hit in shown] == [hit.sha256 for hit in everything[:kept]]
        assert shown[0].sha256 == picture.sha256
        assert len([m for m in at.markdown if m.value.startswith("**#")]) == kept
        assert "load_more" not in [button.key for button in at.button]  # fewer than asked: nothing more

        at.slider(key="min_score").set_value(1.0).run()
        assert [hit.sha256 for hit in at.session_state["hits"]] in ([], [picture.sha256])
        at.slider(key="min_score").set_value(0.0).run()
        assert len(at.session_state["hits"]) == 12  # 0 shows every result again


def test_a_cached_page_is_kept_apart_per_minimum_score(library: Library, tmp_path: Path) -> None:
    """The result cache (real Redis) keys pages by the minimum score too: a page cached without a threshold
    is never served for a query with one."""
    name = f"test:minscore:{tmp_path.name}:"
    cache = QueryCache(REDIS_URL, store=str(library.qdrant_path), prefix=name)
    client = library.open_index()
    try:
        with EmbeddingClient(library.env["EMBEDDING_SERVICE_URL"]) as embedding:
            cached = cache.embedder(ServiceEmbedder(embedding), ServiceIdentity(embedding))
            image = Query(image=library.pictures[3].data)
            everything = search(client, cached, image, limit=12, cache=cache)
            kept, threshold = threshold_between([hit.score for hit in everything])
            strong = Query(image=library.pictures[3].data, filters=Filters(min_score=threshold))
            shown = search(client, cached, strong, limit=12, cache=cache)
            assert [hit.sha256 for hit in shown] == [hit.sha256 for hit in everything[:kept]]
    finally:
        client.close()
        cache.close()
        with redis.Redis.from_url(REDIS_URL) as client:
            for key in client.scan_iter(f"{name}*"):
                client.delete(key)
