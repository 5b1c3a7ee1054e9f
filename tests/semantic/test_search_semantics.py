"""What a person typing a query gets, with a model that understands its world (the demo model).

Every query goes through the app's own search function (and, in the last test, `dyimages search
--json`) to the real embedding service and the embedded Qdrant the real indexer filled (see
conftest.py). These catch mistakes on the query side that vector parity cannot: a negative term's
sign, a text embedded by the wrong tower, a filter that drops the best match, a page that repeats
or skips a result.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from search_app.cli.main import app
from search_app.search.model import Filters, Query
from testkit.semantic_library import ART, ORIGINAL, OTHER_CIRCLES, PHOTOS, RED_CIRCLES, TARGET, DemoLibrary

pytestmark = pytest.mark.integration

RED_CIRCLE_NAMES = {entry.name for entry in RED_CIRCLES}
CIRCLE_NAMES = RED_CIRCLE_NAMES | {entry.name for entry in OTHER_CIRCLES}


def test_a_text_query_finds_the_right_images_first(demo_library: DemoLibrary) -> None:
    assert set(demo_library.names(Query(text="a red circle"))[:3]) == RED_CIRCLE_NAMES
    assert demo_library.names(Query(text=TARGET.scene.caption()))[0] == TARGET.name
    assert demo_library.names(Query(text="a blue circle"))[0] == "blue-circle"


def test_a_negative_term_pushes_its_images_down(demo_library: DemoLibrary) -> None:
    plain = demo_library.names(Query(text="a circle"))
    without_red = demo_library.names(Query(text="a circle -red"))
    assert RED_CIRCLE_NAMES & set(plain[:3])  # a red circle is among the first circles without the term
    assert without_red[0] in CIRCLE_NAMES - RED_CIRCLE_NAMES
    assert not RED_CIRCLE_NAMES & set(without_red[:10])  # with it, no red circle in the first ten
    for name in RED_CIRCLE_NAMES:
        assert without_red.index(name) > plain.index(name)


def test_text_and_image_combined_find_what_matches_both(demo_library: DemoLibrary) -> None:
    """An image of a blue circle plus the text "red": the red circle laid out like the image (large, in the
    centre, on white) is among the first two, ahead of what matches one part only (the blue circle itself;
    the red circles laid out otherwise)."""
    blue_circle = demo_library.pictures["blue-circle"].data
    image_only = demo_library.names(Query(image=blue_circle))
    text_only = demo_library.names(Query(text="red"))
    combined = demo_library.names(Query(text="red", image=blue_circle))
    assert image_only[0] == "blue-circle"
    assert text_only[0].startswith("red-")
    assert "red-circle-1" in combined[:2]  # red-circle-1: red, and the blue circle's layout
    assert combined.index("red-circle-1") < combined.index("blue-circle")
    assert combined.index("red-circle-1") < min(combined.index("red-circle-2"), combined.index("red-circle-3"))


def test_similar_finds_the_altered_copies(demo_library: DemoLibrary) -> None:
    hits = demo_library.search(Query(like=demo_library.pictures[ORIGINAL.name].sha256))
    assert {hit.sha256 for hit in hits[:3]} == {copy.sha256 for copy in demo_library.copies}
    assert demo_library.pictures[ORIGINAL.name].sha256 not in {hit.sha256 for hit in hits}


@pytest.mark.parametrize(
    ("filters", "keeps"),
    [
        (Filters(domains=(ART,)), True),
        (Filters(domains=(PHOTOS,)), False),
        (Filters(content_types=("image/jpeg",)), True),
        (Filters(content_types=("image/png",)), False),
        (Filters(min_width=160), True),
        (Filters(min_width=161), False),
        (Filters(min_height=120), True),
        (Filters(min_height=121), False),
        (Filters(domains=(ART,), content_types=("image/jpeg",), min_width=160, min_height=120), True),
    ],
)
def test_a_filter_keeps_the_best_match_when_it_qualifies_and_drops_it_when_not(
    demo_library: DemoLibrary, filters: Filters, keeps: bool
) -> None:
    text = TARGET.scene.caption()
    target = demo_library.pictures[TARGET.name].sha256
    assert demo_library.search(Query(text=text))[0].sha256 == target
    hits = demo_library.search(Query(text=text, filters=filters))
    assert hits, "something else qualifies in every case"
    if keeps:
        assert hits[0].sha256 == target
    else:
        assert target not in {hit.sha256 for hit in hits}
    for hit in hits:
        assert not filters.domains or set(hit.domains) & set(filters.domains)
        assert not filters.content_types or hit.content_type in filters.content_types
        assert hit.width >= filters.min_width
        assert hit.height >= filters.min_height


def test_paging_never_repeats_or_skips_a_result(demo_library: DemoLibrary) -> None:
    query = Query(text="a circle")
    everything = [hit.sha256 for hit in demo_library.search(query, limit=100)]
    assert len(everything) == len(demo_library.pictures)
    paged: list[str] = []
    for offset in range(0, len(everything) + 4, 4):
        page = demo_library.search(query, limit=4, offset=offset)
        assert [hit.rank for hit in page] == list(range(offset + 1, offset + 1 + len(page)))
        paged += [hit.sha256 for hit in page]
    assert paged == everything


def test_dyimages_search_json_gives_the_same_answers(
    demo_library: DemoLibrary, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI (`dyimages search --json`) with a negative term and every filter, against the same library."""
    for key, value in demo_library.library.env.items():
        monkeypatch.setenv(key, value)

    def cli(*args: str) -> list[str]:
        result = CliRunner().invoke(app, ["search", *args, "--json"])
        assert result.exit_code == 0, result.output
        return [demo_library.name_of(hit["sha256"]) for hit in json.loads(result.stdout)["results"]]

    without_red = cli("a circle -red", "--top-k", "10")
    assert without_red == demo_library.names(Query(text="a circle -red"), limit=10)
    assert not RED_CIRCLE_NAMES & set(without_red)
    caption = TARGET.scene.caption()
    kept = ["--domain", ART, "--format", "jpeg", "--min-width", "160", "--min-height", "120"]
    assert cli(caption, *kept)[0] == TARGET.name
    assert TARGET.name not in cli(caption, "--min-width", "161")
    assert TARGET.name not in cli(caption, "--format", "png")
    assert TARGET.name not in cli(caption, "--domain", PHOTOS)
