"""The plain search functions against a real embedded Qdrant, with vectors chosen by the test.

The embedder here is a lookup table of fixed vectors: these tests are about query parsing, vector
arithmetic, filters and paging, not about the model (the AppTest and CLI tests use the real one).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from dyimages_common.settings import SettingsError, load_settings
from dyimages_common.store import builds as index_builds
from dyimages_common.store.errors import CollectionMissing
from dyimages_common.store.protocol import ImageStore
from search_app.search.engine import facet_values, index_size, search
from search_app.search.model import Filters, Query
from search_app.search.vectors import IndexMismatch, QueryError, combine, parse_text
from search_app.settings import AppSettings
from testkit.index_points import add_point as index_point
from testkit.index_points import fake_sha as sha
from testkit.index_points import open_index

pytestmark = pytest.mark.unit

DIM = 8


def unit(*values: float) -> np.ndarray:
    vector = np.zeros(DIM, dtype=np.float32)
    vector[: len(values)] = values
    return vector / np.linalg.norm(vector)


class TableEmbedder:
    """Fixed vectors per text; counts calls so caching and negative terms can be checked."""

    def __init__(self, texts: dict[str, np.ndarray]) -> None:
        self.texts = texts
        self.calls: list[str] = []

    def text(self, text: str) -> np.ndarray:
        self.calls.append(text)
        return self.texts[text]

    def image(self, data: bytes) -> np.ndarray:
        return unit(*[float(b) for b in data[:DIM]])


def add_point(index: ImageStore, n: int, vector: np.ndarray, url: str, content_type: str, size: tuple[int, int]):
    index_point(index, sha(n), vector, url, content_type=content_type, size=size)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[ImageStore]:
    index = open_index(tmp_path / "qdrant")
    # 1: beach with people, 2: empty beach, 3: city (PNG, large), 4: forest (from another site)
    add_point(index, 1, unit(1, 1, 0), "https://www.photos.example/beach-people.jpg", "image/jpeg", (640, 480))
    add_point(index, 2, unit(1, 0, 0), "https://photos.example/beach.jpg", "image/jpeg", (640, 480))
    add_point(index, 3, unit(0, 0, 1), "https://photos.example/city.png", "image/png", (2000, 1500))
    add_point(index, 4, unit(0.2, 0, 0, 1), "https://other.example/forest.jpg", "image/jpeg", (100, 80))
    yield index
    index.close()


EMBEDDER_TEXTS = {"beach": unit(1, 0.6, 0), "people": unit(0, 1, 0), "city": unit(0, 0, 1), "red car": unit(0.1, 1, 1)}


def shas(hits) -> list[str]:
    return [hit.sha256 for hit in hits]


@pytest.mark.parametrize(
    ("text", "positive", "negatives"),
    [
        ("beach", "beach", ()),
        ("beach -people", "beach", ("people",)),
        ('beach -"parked cars" -dogs', "beach", ("parked cars", "dogs")),
        ("well-lit room", "well-lit room", ()),
        ("-people", "", ("people",)),
        ("  spaced   out  ", "spaced out", ()),
    ],
)
def test_parse_text_splits_negative_terms(text: str, positive: str, negatives: tuple[str, ...]) -> None:
    parsed = parse_text(text)
    assert parsed.positive == positive
    assert parsed.negatives == negatives


def test_combine_is_normalised_mean_minus_weighted_negatives() -> None:
    a, b, n = unit(1, 0), unit(0, 1), unit(1, 1)
    got = combine([a, b], [n], negative_weight=0.5)
    expected = (a + b) / 2 - 0.5 * n
    np.testing.assert_allclose(got, expected / np.linalg.norm(expected), rtol=1e-6)
    assert np.linalg.norm(got) == pytest.approx(1.0)


def test_combine_refuses_nothing_to_search_and_a_cancelled_query() -> None:
    with pytest.raises(QueryError, match="nothing to search for"):
        combine([], [unit(1)], 0.5)
    with pytest.raises(QueryError, match="cancels itself out"):
        combine([unit(1)], [unit(1)], 1.0)


def test_text_search_ranks_by_cosine(client: ImageStore) -> None:
    hits = search(client, TableEmbedder(EMBEDDER_TEXTS), Query(text="beach"), limit=4)
    assert shas(hits)[:2] == [sha(1), sha(2)]
    assert [hit.rank for hit in hits] == [1, 2, 3, 4]
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert hits[0].url == "https://www.photos.example/beach-people.jpg"
    assert hits[0].domains == ["photos.example"]


def test_negative_text_pushes_matching_images_down(client: ImageStore) -> None:
    embedder = TableEmbedder(EMBEDDER_TEXTS)
    hits = search(client, embedder, Query(text="beach -people"), limit=2)
    assert shas(hits) == [sha(2), sha(1)]  # the empty beach now wins
    assert embedder.calls == ["beach", "people"]


def test_image_and_text_combine(client: ImageStore) -> None:
    # The image alone points at the city; with "beach" the mean lies between, the city stays first
    # and the beach-with-people (closest to the mean) comes second.
    image = bytes([0, 0, 1, 0, 0, 0, 0, 0])
    alone = search(client, TableEmbedder(EMBEDDER_TEXTS), Query(image=image), limit=1)
    assert shas(alone) == [sha(3)]
    both = search(client, TableEmbedder(EMBEDDER_TEXTS), Query(text="beach", image=image), limit=2)
    assert shas(both) == [sha(3), sha(1)]


def test_more_like_this_uses_the_stored_vector_and_leaves_the_image_out(client: ImageStore) -> None:
    embedder = TableEmbedder(EMBEDDER_TEXTS)
    hits = search(client, embedder, Query(like=sha(2)), limit=3)
    assert sha(2) not in shas(hits)
    assert shas(hits)[0] == sha(1)
    assert embedder.calls == []  # no embedding call for "more like this"


def test_more_like_an_unknown_image_is_a_query_error(client: ImageStore) -> None:
    with pytest.raises(QueryError, match="not in the index"):
        search(client, TableEmbedder(EMBEDDER_TEXTS), Query(like=sha(99)))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (Filters(domains=("other.example",)), {sha(4)}),
        (Filters(content_types=("image/png",)), {sha(3)}),
        (Filters(min_width=1000), {sha(3)}),
        (Filters(min_height=400, content_types=("image/jpeg",)), {sha(1), sha(2)}),
        (Filters(domains=("photos.example",), min_width=1000), {sha(3)}),
        (Filters(domains=("nowhere.example",)), set()),
    ],
)
def test_filters_restrict_results(client: ImageStore, filters: Filters, expected: set[str]) -> None:
    hits = search(client, TableEmbedder(EMBEDDER_TEXTS), Query(text="city", filters=filters), limit=10)
    assert set(shas(hits)) == expected


def test_paging_continues_where_the_last_page_stopped(client: ImageStore) -> None:
    embedder = TableEmbedder(EMBEDDER_TEXTS)
    everything = search(client, embedder, Query(text="red car"), limit=4)
    first = search(client, embedder, Query(text="red car"), limit=2)
    second = search(client, embedder, Query(text="red car"), limit=2, offset=2)
    assert shas(first) + shas(second) == shas(everything)
    assert [hit.rank for hit in second] == [3, 4]


def test_empty_query_and_missing_collection(tmp_path: Path) -> None:
    qdrant = open_index(tmp_path / "empty")
    try:
        with pytest.raises(QueryError):
            search(qdrant, TableEmbedder(EMBEDDER_TEXTS), Query(text="-people"))
        with pytest.raises(CollectionMissing):
            search(qdrant, TableEmbedder(EMBEDDER_TEXTS), Query(text="city"))
        assert index_size(qdrant) is None
        assert facet_values(qdrant, "domains") == []
    finally:
        qdrant.close()


def test_index_size_and_domain_facets(client: ImageStore) -> None:
    assert index_size(client) == 4
    assert facet_values(client, "domains") == ["photos.example", "other.example"]


def test_settings_fail_clearly_on_bad_values(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_TOP_K", "zero")
    with pytest.raises(SettingsError, match="APP_TOP_K='zero'"):
        load_settings(AppSettings)
    monkeypatch.setenv("APP_TOP_K", "50")
    monkeypatch.setenv("APP_MAX_TOP_K", "20")
    with pytest.raises(SettingsError, match=r"APP_TOP_K \(50\) is above APP_MAX_TOP_K \(20\)"):
        load_settings(AppSettings)
    monkeypatch.setenv("APP_MAX_TOP_K", "100")
    monkeypatch.setenv("APP_THUMBNAIL_PX", "5")
    with pytest.raises(SettingsError, match="APP_THUMBNAIL_PX"):
        load_settings(AppSettings)


@pytest.mark.parametrize(
    ("text", "url", "expected"),
    [
        ("photos.example", "https://photos.example/a.jpg", r"[photos\.example](<https://photos.example/a.jpg>)"),
        ("x", "https://e.example/a (1)>.jpg", r"[x](<https://e.example/a%20(1)%3E.jpg>)"),
        ("[click](javascript:alert(1))", "javascript:alert(1)", r"\[click\]\(javascript\:alert\(1\)\)"),
    ],
)
def test_result_links_are_safe_markdown(text: str, url: str, expected: str) -> None:
    from search_app.ui.safe_markdown import markdown_link

    assert markdown_link(text, url) == expected


def test_an_index_of_another_vector_size_asks_for_a_reindex(client: ImageStore) -> None:
    class WideEmbedder(TableEmbedder):
        def text(self, text: str) -> np.ndarray:
            return np.ones(DIM * 2, dtype=np.float32) / np.sqrt(DIM * 2)

    with pytest.raises(IndexMismatch, match=r"8-dimensional vectors of test, but the embedding service makes 16"):
        search(client, WideEmbedder({}), Query(text="city"))


def test_more_like_this_after_the_collection_was_dropped_says_the_index_is_empty(client: ImageStore) -> None:
    index_builds.drop(client)
    with pytest.raises(CollectionMissing):
        search(client, TableEmbedder(EMBEDDER_TEXTS), Query(like=sha(2)))


def test_dates_filter_and_order_results_and_browsing(tmp_path: Path) -> None:
    """``date`` is the EXIF date when there is one, else the download time; bounds are whole UTC days."""
    from datetime import UTC, date, datetime

    index = open_index(tmp_path / "dated")
    try:
        shot = datetime(2020, 5, 1, 23, 30, tzinfo=UTC)
        index_point(index, sha(1), unit(1, 0), "https://a.example/1.jpg", taken_at=shot, camera="Canon EOS 5D")
        index_point(
            index, sha(2), unit(0.9, 0.1), "https://a.example/2.jpg", downloaded_at=datetime(2021, 1, 1, tzinfo=UTC)
        )
        index_point(
            index, sha(3), unit(0, 1), "https://a.example/3.jpg", downloaded_at=datetime(2019, 1, 1, tzinfo=UTC)
        )
        embedder = TableEmbedder({"beach": unit(1, 0)})

        def found(text: str = "beach", **filters: object) -> list[str]:
            return shas(search(index, embedder, Query(text=text, filters=Filters(**filters)), limit=10))  # type: ignore[arg-type]

        assert found() == [sha(1), sha(2), sha(3)]  # relevance
        assert found(date_from=date(2020, 5, 1), date_to=date(2020, 5, 1)) == [sha(1)]  # inclusive, one day
        assert found(date_to=date(2020, 4, 30)) == [sha(3)]
        assert found(order="newest") == [sha(2), sha(1), sha(3)]
        assert found(order="oldest", min_score=0.5) == [sha(1), sha(2)]  # the matches above the minimum, by date
        assert found(text="", order="newest") == [sha(2), sha(1), sha(3)]  # no query: browse by date
        assert found(text="", order="oldest", date_from=date(2020, 1, 1)) == [sha(1), sha(2)]
        with pytest.raises(QueryError):
            found(text="")  # no query and no date order: nothing to search for
        (hit,) = search(index, embedder, Query(text="beach"), limit=1)
        assert (hit.taken_at, hit.camera, hit.date) == (shot, "Canon EOS 5D", shot)
        as_json = hit.to_json()
        assert (as_json["taken_at"], as_json["camera"], as_json["date"]) == (
            "2020-05-01T23:30:00Z",
            "Canon EOS 5D",
            "2020-05-01T23:30:00Z",
        )
    finally:
        index.close()
