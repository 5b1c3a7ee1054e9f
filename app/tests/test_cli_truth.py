"""`dyimages` tells the truth: exit codes as dyimages_common.process.exit_codes says, only its own lines on
stderr when services are away, and "unknown" (null) for what it could not read.

Commands with services away run as real processes (what the library modules print at import and on a
refused connection is part of what a person sees), against addresses where nothing listens: RabbitMQ,
the embedding service and a Qdrant server (127.0.0.1 ports no one uses). Argument errors run in-process.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dyimages_common.process import exit_codes
from search_app.cli.main import app
from testkit.cli_process import run_dyimages
from testkit.index_points import add_point, fake_sha, open_index
from testkit.indexed_library import Library, record_downloads
from testkit.procs import free_port

pytestmark = pytest.mark.integration

runner = CliRunner()
OWN_LINE = re.compile(r"^(error|warning): ")


@pytest.fixture(scope="module")
def everything_away(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Settings naming services where nothing answers, a URL file, and a state with one failed download."""
    root = tmp_path_factory.mktemp("away")
    (root / "urls.txt").write_text("https://away.example/a.jpg\n")
    record_downloads(root / "state.sqlite3", [], {"https://away.example/gone.jpg": "http_404: gone"})
    return {
        "RABBITMQ_HOST": "127.0.0.1",
        "RABBITMQ_PORT": str(free_port()),
        "EMBEDDING_SERVICE_URL": f"http://127.0.0.1:{free_port()}",
        "QDRANT_PATH": "",
        "QDRANT_HOST": "127.0.0.1",
        "QDRANT_PORT": str(free_port()),
        "STATE_DB": str(root / "state.sqlite3"),
        "URLS_FILE": str(root / "urls.txt"),
        "IMAGES_DIR": str(root / "images"),
        "REDIS_URL": "",
        "LOG_LEVEL": "INFO",
    }


COMMANDS = [
    ["stats"],
    ["search", "a beach"],
    ["failures"],
    ["retry"],
    ["reindex"],
    ["drop", "--yes"],
    ["prune"],
    ["audit"],
]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args))
def test_with_every_service_away_a_command_prints_only_its_own_lines_and_exits_3(
    everything_away: dict[str, str], args: list[str]
) -> None:
    result = run_dyimages(everything_away, *args)
    assert result.returncode == exit_codes.SERVICE_DOWN, (result.returncode, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert lines, "the command said nothing about the services"
    assert all(OWN_LINE.match(line) for line in lines), result.stderr  # no library log line, warning, traceback
    assert any(line.startswith("error: ") or "not answering" in line for line in lines)


def test_stats_says_unknown_and_null_for_what_it_could_not_read(everything_away: dict[str, str]) -> None:
    env = {**everything_away, "STATE_DB": str(Path(everything_away["STATE_DB"]).parent)}  # a folder: unreadable
    data = json.loads(run_dyimages(env, "stats", "--json").stdout)
    assert data["index"]["exists"] is None  # not false: Qdrant did not say
    assert data["index"]["points"] is None
    assert data["index"]["error"]
    assert data["urls"]["counts"] is None  # not zeros
    assert data["urls"]["error"]
    assert data["queue"]["queued"] is None
    text = run_dyimages(env, "stats").stdout
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert rows["points"].split()[-1] == "unknown"
    assert "no collection yet" not in text
    assert rows["queued"].split()[-1] == "unknown"
    assert rows["urls"].split()[-1] == "unknown"


@pytest.mark.parametrize(
    "args",
    [
        ["search", "a beach", "--format", "tiff"],
        ["search", "--image", "/nonexistent/query.jpg"],
        ["search"],
        ["search", "a beach", "--top-k", "0"],
        ["search", "a beach", "--from", "yesterday"],
        ["retry", "--reason", "not_a_reason"],
        ["failures", "--limit", "0"],
        ["stats", "--interval", "0"],
        ["prune", "--max-share", "2"],
        ["reindex", "--timeout", "-1"],
        ["audit", "--no-such-option"],
        ["drop", "extra-argument"],
        ["no-such-command"],
    ],
    ids=lambda args: " ".join(args) or "nothing",
)
def test_a_bad_argument_exits_2_everywhere(args: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "qdrant"))  # nothing is opened before the check
    result = runner.invoke(app, args)
    assert result.exit_code == exit_codes.BAD_SETTING, (result.exit_code, result.output)


def test_the_top_level_help_lists_every_exit_code() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    codes = {name: value for name, value in vars(exit_codes).items() if name.isupper() and isinstance(value, int)}
    assert sorted(codes.values()) == [0, 1, 2, 3, 4]
    for value in codes.values():
        assert re.search(rf"\b{value} [a-z]", text), (value, text)


def test_a_search_on_an_index_of_another_model_exits_4(
    library_environment: Library, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = open_index(tmp_path / "qdrant", name=library_environment.env["QDRANT_COLLECTION"])
    add_point(index, fake_sha(1), [1.0] + [0.0] * 511, "https://other.example/1.jpg", model="another-model")
    index.close()
    monkeypatch.setenv("QDRANT_PATH", str(tmp_path / "qdrant"))
    result = runner.invoke(app, ["search", "a beach"])
    assert result.exit_code == exit_codes.MODEL_MISMATCH, result.output
    assert "dyimages reindex" in result.stderr
