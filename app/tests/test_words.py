"""Words beside vectors: a query's words matched in the source URLs (file name, path), fused by reciprocal rank
with the vector ranking (Qdrant's query API: prefetch + RRF), in embedded Qdrant and through the CLI and the
UI against the library indexed by the real indexer and embedding service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient, models
from typer.testing import CliRunner

import search_app
from dyimages_common.points import point_id
from dyimages_common.qdrant import ensure_collection
from search_app.search import Filters, Query, query_words, search
from testkit.app_driver import running_app, search_json
from testkit.indexed_library import Library

runner = CliRunner()
APP = str(Path(search_app.__file__).parent / "streamlit_app.py")


class Fixed:
    """Every text is the same vector: only the words can change the order (a stand-in for a model)."""

    def text(self, text: str) -> np.ndarray:
        return np.array([1, 0, 0], dtype=np.float32)

    def image(self, data: bytes) -> np.ndarray:
        raise AssertionError("no image in these queries")


@pytest.mark.unit
def test_query_words_keep_the_first_five_of_three_characters_or_more() -> None:
    assert query_words("a red IMG_2041 on the sea at dusk by me now") == ["red", "IMG_2041", "the", "sea", "dusk"]
    assert query_words("a b") == []


@pytest.mark.unit
def test_a_word_in_the_file_name_lifts_an_image_clip_ranks_last(tmp_path: Path) -> None:
    client = QdrantClient(path=str(tmp_path / "qdrant"))
    try:
        ensure_collection(client, "c", dim=3, model="test")
        points = {
            "beach": ([1, 0, 0], "https://a.example/beach.jpg"),
            "dunes": ([0.9, 0.3, 0], "https://a.example/dunes.jpg"),
            "camera": ([0, 0, 1], "https://b.example/DCIM/IMG_2041.JPG"),
        }
        client.upsert(
            "c",
            [
                models.PointStruct(id=point_id(f"{n:064x}"), vector=v, payload={"sha256": name, "urls": [url]})
                for n, (name, (v, url)) in enumerate(points.items())
            ],
        )
        plain = search(client, "c", Fixed(), Query(text="IMG_2041 photo"), limit=3)
        assert [h.sha256 for h in plain] == ["beach", "dunes", "camera"]
        fused = search(client, "c", Fixed(), Query(text="IMG_2041 photo", filters=Filters(match_words=True)), limit=3)
        assert [h.sha256 for h in fused] == ["camera", "beach", "dunes"]
        only_b = Filters(match_words=True, domains=("nowhere.example",))
        assert search(client, "c", Fixed(), Query(text="IMG_2041", filters=only_b), limit=3) == []  # filters hold
    finally:
        client.close()


@pytest.mark.integration
def test_cli_words_find_the_image_by_its_file_name_and_page_without_repeats(library_environment: Library) -> None:
    target = library_environment.pictures[4]  # https://photos.example/7005.jpg
    query = "a red bicycle 7005"
    plain = [hit["sha256"] for hit in search_json(query, "--top-k", "12")["results"]]
    data = search_json(query, "--top-k", "12", "--words")
    assert data["query"]["filters"]["match_words"] is True
    fused = [hit["sha256"] for hit in data["results"]]
    assert fused[0] == target.sha256
    assert plain[0] != target.sha256 or plain == fused  # the words moved it up (unless CLIP had it first)
    assert sorted(fused) == sorted(plain)  # the same images, another order
    pages: list[str] = []
    for offset in range(0, 12, 5):
        page = search_json(query, "--top-k", "5", "--offset", str(offset), "--words")["results"]
        pages += [hit["sha256"] for hit in page]
    assert pages == fused


@pytest.mark.integration
def test_ui_match_words_puts_the_named_file_first(library_environment: Library) -> None:
    target = library_environment.pictures[4]
    with running_app() as at:
        at.text_input(key="query").input("a red bicycle 7005").run()
        plain = [hit.sha256 for hit in at.session_state["hits"]]
        at.checkbox(key="match_words").check().run()
        assert not at.exception, at.exception
        fused = [hit.sha256 for hit in at.session_state["hits"]]
        assert fused[0] == target.sha256
        assert sorted(fused) == sorted(plain)
