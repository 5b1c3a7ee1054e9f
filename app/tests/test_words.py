"""Words beside vectors: a query's words matched in the source URLs (file name, path), fused by reciprocal rank
with the vector ranking (Qdrant's query API: prefetch + RRF), in embedded Qdrant and through the CLI and the
UI against the library indexed by the real indexer and embedding service."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import search_app
from search_app.search.engine import search
from search_app.search.model import Filters, Query
from search_app.search.vectors import query_words
from testkit.app_driver import running_app, search_json
from testkit.index_points import add_point, fake_sha, open_index
from testkit.indexed_library import Library

runner = CliRunner()
APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")


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
    client = open_index(tmp_path / "qdrant")
    try:
        points = {
            "beach": ([1, 0, 0], "https://a.example/beach.jpg", None),
            "dunes": ([0.9, 0.3, 0], "https://a.example/dunes.jpg", None),
            "camera": ([0, 0, 1], "https://b.example/DCIM/IMG_2041.JPG", None),
            "canon": ([0.1, 1, 0], "https://b.example/x.jpg", "Canon EOS 5D"),
        }
        names = {fake_sha(n): name for n, name in enumerate(points)}
        for sha, name in names.items():
            vector, url, camera = points[name]
            add_point(client, sha, np.array(vector), url, camera=camera)

        def ranked(text: str, filters: Filters | None = None) -> list[str]:
            filters = filters or Filters()
            return [names[h.sha256] for h in search(client, Fixed(), Query(text=text, filters=filters), limit=4)]

        assert ranked("IMG_2041 photo") == ["beach", "dunes", "canon", "camera"]
        assert ranked("IMG_2041 photo", Filters(match_words=True))[0] == "camera"
        assert ranked("canon", Filters(match_words=True))[0] == "canon"  # the camera's EXIF name is a word too
        only_b = Filters(match_words=True, domains=("nowhere.example",))
        assert ranked("IMG_2041", only_b) == []  # filters hold
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
