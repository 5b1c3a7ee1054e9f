"""Near-duplicates collapsed into "+N similar": in the search functions (embedded Qdrant, vectors chosen here),
and in the CLI and the UI against the library indexed by the real indexer and embedding service.

With random model weights distinct pictures are often closer than 0.94, so the real-service tests do not
pick duplicates by eye: the oracle folds the uncollapsed results with numpy over the indexed vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import search_app
from search_app.cli.main import app
from search_app.search.collapse import NEAR_DUPLICATE_COSINE
from search_app.search.engine import search
from search_app.search.model import Filters, Query
from testkit.app_driver import search_json, searching_by_image
from testkit.index_points import add_point, fake_sha, open_index
from testkit.indexed_library import Library

runner = CliRunner()
APP = str(Path(search_app.__file__).parent / "ui" / "streamlit_app.py")


def oracle(indexed: dict[str, np.ndarray], ranked: list[str], threshold: float) -> list[tuple[str, list[str]]]:
    """Each kept sha256 with the ones folded into it, by the rule: the first better kept hit within ``threshold``."""
    vectors = {sha: v / np.linalg.norm(v) for sha, v in indexed.items()}
    kept: list[tuple[str, list[str]]] = []
    for sha in ranked:
        twin = next((k for k in kept if float(vectors[sha] @ vectors[k[0]]) >= threshold), None)
        if twin is None:
            kept.append((sha, []))
        else:
            twin[1].append(sha)
    return kept


class ImageOnly:
    def text(self, text: str) -> np.ndarray:
        raise AssertionError("no text in these queries")

    def image(self, data: bytes) -> np.ndarray:
        return np.frombuffer(data, dtype=np.float32)


@pytest.mark.unit
def test_a_near_duplicate_folds_into_the_better_result_and_ranks_stay(tmp_path: Path) -> None:
    client = open_index(tmp_path / "qdrant")
    try:
        vectors = {"a": [1, 0, 0], "a-copy": [0.99, 0.1, 0], "b": [0, 1, 0], "between": [0.8, 0.6, 0]}
        names = {fake_sha(n): name for n, name in enumerate(vectors)}
        for sha, name in names.items():
            add_point(client, sha, np.array(vectors[name]), f"https://e.example/{name}.jpg")
        query = np.array([1, 0, 0], dtype=np.float32).tobytes()
        plain = search(client, ImageOnly(), Query(image=query), limit=4)
        assert [(names[h.sha256], h.similar) for h in plain] == [("a", []), ("a-copy", []), ("between", []), ("b", [])]
        folded = search(client, ImageOnly(), Query(image=query, filters=Filters(collapse=0.94)), limit=4)
        # cos(a, a-copy) = 0.995 folds; cos(a, between) = 0.8 and cos(between, b) = 0.6 do not
        assert [(names[h.sha256], [names[s] for s in h.similar], h.rank) for h in folded] == [
            ("a", ["a-copy"], 1),
            ("between", [], 3),
            ("b", [], 4),
        ]
    finally:
        client.close()


@pytest.mark.integration
def test_cli_collapse_matches_the_numpy_oracle(library_environment: Library, tmp_path: Path) -> None:
    image = tmp_path / "query.jpg"
    image.write_bytes(library_environment.pictures[3].data)
    plain = search_json("--image", str(image), "--top-k", "12")
    ranked = [hit["sha256"] for hit in plain["results"]]
    expected = oracle(library_environment.vectors(), ranked, NEAR_DUPLICATE_COSINE)
    assert len(expected) < 12, "the library has images within 0.94 of each other under the test model"

    folded = search_json("--image", str(image), "--top-k", "12", "--collapse")
    assert folded["query"]["filters"]["collapse"] == NEAR_DUPLICATE_COSINE
    assert [(hit["sha256"], hit["similar"]) for hit in folded["results"]] == expected
    assert [hit["rank"] for hit in folded["results"]] == [ranked.index(sha) + 1 for sha, _ in expected]
    wide = {"COLUMNS": "200"}  # one table row per line
    text = runner.invoke(app, ["search", "--image", str(image), "--top-k", "12", "--collapse"], env=wide).stdout
    first_folded = next(len(similar) for _, similar in expected if similar)
    assert f"+{first_folded} similar" in text


@pytest.mark.integration
def test_ui_collapse_shows_plus_n_similar_and_still_loads_more(
    library_environment: Library, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("APP_TOP_K", "6")
    library = library_environment
    indexed = library.vectors()  # before the app holds the Qdrant folder
    with searching_by_image(library.pictures[3].data) as at:
        ranked = [hit.sha256 for hit in at.session_state["hits"]]
        at.checkbox(key="collapse").check().run()
        assert not at.exception, at.exception
        expected = oracle(indexed, ranked, NEAR_DUPLICATE_COSINE)
        assert [(hit.sha256, hit.similar) for hit in at.session_state["hits"]] == expected
        lines = [m.value for m in at.markdown if m.value.startswith("**#")]
        assert len(lines) == len(expected)
        marks = [
            line.endswith(f" · +{len(similar)} similar") for line, (_, similar) in zip(lines, expected, strict=True)
        ]
        assert marks == [bool(similar) for _, similar in expected]
        assert "load_more" in [button.key for button in at.button]  # 6 fetched, fewer shown: more remain
