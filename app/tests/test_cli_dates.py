"""`dyimages search` by the photo's own date: --from/--to, --order newest/oldest, browsing without a
query, and the date and camera in the table and in --json; against photos with real EXIF indexed by the
real indexer and embedding service (testkit.dated_library)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dyimages_common.process import exit_codes
from search_app.cli.main import app
from testkit.app_driver import search_json
from testkit.dated_library import DatedPhoto, index_dated
from testkit.indexed_library import Library

pytestmark = pytest.mark.integration


@pytest.fixture
def dated(own_library: Library, tmp_path: Path) -> dict[str, DatedPhoto]:
    return index_dated(own_library, tmp_path / "indexer.log")


def names(answer: dict, photos: dict[str, DatedPhoto]) -> list[str]:
    by_sha = {p.sha256: name for name, p in photos.items()}
    return [by_sha[result["sha256"]] for result in answer["results"]]


def test_date_filters_order_and_browse(dated: dict[str, DatedPhoto]) -> None:
    answer = search_json("a photo", "--top-k", "10", "--from", "2019-01-01", "--to", "2024-12-31")
    assert set(names(answer, dated)) == {"snow-2021.jpg", "midnight-2022.jpg", "party-2023.jpg"}
    echoed = {"date_from": "2019-01-01", "date_to": "2024-12-31", "order": "relevance"}
    assert echoed.items() <= answer["query"]["filters"].items()

    newest = search_json("a photo", "--top-k", "10", "--order", "newest")
    assert names(newest, dated) == [
        "scan-no-exif.jpg",
        "party-2023.jpg",
        "midnight-2022.jpg",
        "snow-2021.jpg",
        "beach-2018.jpg",
    ]
    oldest = search_json("--order", "oldest", "--top-k", "10", "--to", "2023-12-31")  # no query: browse
    assert names(oldest, dated) == ["beach-2018.jpg", "snow-2021.jpg", "midnight-2022.jpg", "party-2023.jpg"]
    assert {r["score"] for r in oldest["results"]} == {0.0}

    snow = next(r for r in newest["results"] if r["sha256"] == dated["snow-2021.jpg"].sha256)
    assert (snow["taken_at"], snow["camera"]) == ("2021-01-30T09:00:00+01:00", "NIKON D750")
    scan = next(r for r in newest["results"] if r["sha256"] == dated["scan-no-exif.jpg"].sha256)
    assert scan["taken_at"] is None
    assert scan["date"] == scan["downloaded_at"]


def test_days_count_in_utc(dated: dict[str, DatedPhoto]) -> None:
    """00:30 on 1 June at UTC+2 is 22:30 on 31 May in UTC: the photo is on 31 May, and shown so."""
    assert names(search_json("--order", "oldest", "--from", "2022-06-01", "--to", "2022-06-01"), dated) == []
    on_may_31 = search_json("--order", "oldest", "--from", "2022-05-31", "--to", "2022-05-31")
    assert names(on_may_31, dated) == ["midnight-2022.jpg"]
    assert on_may_31["results"][0]["taken_at"] == "2022-06-01T00:30:00+02:00"
    result = CliRunner().invoke(app, ["search", "--order", "oldest", "--to", "2022-05-31"], env={"COLUMNS": "400"})
    assert "2022-05-31" in next(
        line for line in result.stdout.splitlines() if dated["midnight-2022.jpg"].sha256[:12] in line
    )


def test_the_table_shows_the_date_and_camera_as_text(dated: dict[str, DatedPhoto]) -> None:
    result = CliRunner().invoke(app, ["search", "--order", "newest"], env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "score" not in lines[1]  # browsing: no score column
    row = {name: next(line for line in lines if p.sha256[:12] in line) for name, p in dated.items()}
    assert "2018-07-14" in row["beach-2018.jpg"]
    assert "Canon EOS 80D" in row["beach-2018.jpg"]
    assert "2025-06-01 (downloaded)" in row["scan-no-exif.jpg"]
    # Rich markup in a camera name is printed as it is, not interpreted
    assert "[evil](javascript:alert(1)) <b>[bold]X" in row["party-2023.jpg"]


@pytest.mark.parametrize(
    "args",
    [
        ["--from", "2024-13-01"],
        ["--to", "yesterday"],
        ["--from", "2024-02-01", "--to", "2024-01-31"],
        ["--order", "random"],
    ],
)
def test_bad_dates_and_orders_are_refused_as_arguments(own_library: Library, args: list[str]) -> None:
    result = CliRunner().invoke(app, ["search", "a photo", *args])
    assert result.exit_code == exit_codes.BAD_SETTING, result.output


def test_without_query_or_date_order_there_is_nothing_to_search(own_library: Library) -> None:
    result = CliRunner().invoke(app, ["search", "--from", "2020-01-01"])
    assert result.exit_code == exit_codes.BAD_SETTING
    assert "--order newest/oldest to browse" in result.stderr
