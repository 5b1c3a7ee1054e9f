"""`dyimages audit` against a library the real indexer built (real embedding service, embedded Qdrant,
real RabbitMQ): balanced books exit 0, and each kind of imbalance is named and exits 1.

Each test audits its own copy of the session's library (images, URL state, Qdrant folder) with a
queue of its own, breaks one thing the way it breaks in life (a file deleted, a point dropped, a row
edited, a URL line removed, ...), and checks the audit names exactly that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from search_app.cli.main import app
from search_app.ops.audit import KINDS
from search_app.ops.audit_library import LIBRARY_KINDS
from testkit.compose import load_compose, service_environment
from testkit.images import jpeg
from testkit.indexed_library import COLLECTION, Library, Picture, dead_letter, messages
from testkit.messages import publish
from testkit.procs import free_port
from testkit.rabbit import rabbit_env
from testkit.stores import RawPoints, raw_points

pytestmark = pytest.mark.integration

runner = CliRunner()
PENDING_URL = "https://photos.example/not-fetched-yet.jpg"


@dataclass
class Books:
    """One test's copy of the library, in the environment: URL file, state, images, Qdrant, its own queue."""

    library: Library
    root: Path
    urls_file: Path
    images_dir: Path
    state_db: Path
    qdrant_path: Path
    env: dict[str, str]

    @property
    def single(self) -> Picture:
        """A picture reached by one URL."""
        return next(p for p in self.library.pictures if len(p.urls) == 1)

    @property
    def twice(self) -> Picture:
        """The picture reached by two URLs."""
        return next(p for p in self.library.pictures if len(p.urls) == 2)

    def failed_url(self) -> str:
        return next(iter(failed_urls(self.state_db)))

    def dead_letter(self, picture: Picture, reason: str) -> None:
        """Dead-letter the picture's message on this copy's queue, the way the indexer does."""
        own = Library(env=self.env, images_dir=self.images_dir, qdrant_path=self.qdrant_path, state_db=self.state_db)
        dead_letter(own, messages(picture)[0].model_dump_json().encode(), reason)

    @contextlib.contextmanager
    def qdrant(self) -> Iterator[RawPoints]:
        """The copy's embedded store, as another tool writes it, closed before the audit opens it."""
        with raw_points(self.qdrant_path, COLLECTION) as points:
            yield points

    def state(self, sql: str, *args: object) -> None:
        connection = sqlite3.connect(self.state_db)
        with connection:
            connection.execute(sql, args)
        connection.close()


def failed_urls(state_db: Path) -> list[str]:
    connection = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        return [row[0] for row in connection.execute("SELECT url FROM urls WHERE status = 'failed'")]
    finally:
        connection.close()


def url_file_text(library: Library, failed: list[str]) -> str:
    lines = ["# the library's URLs", ""]
    lines += [url for picture in library.pictures for url in picture.urls]
    lines += [*failed, f"{PENDING_URL}  # added, not fetched yet", "not a url"]
    return "\n".join(lines) + "\n"


@pytest.fixture
def books(library: Library, tmp_path: Path, rabbit_queue: str, monkeypatch: pytest.MonkeyPatch) -> Books:
    """A copy of the session's library whose books balance, with one URL pending and one invalid line."""
    images_dir = tmp_path / "images"
    for picture in library.pictures:
        write_atomic(images_dir, picture.path, (library.images_dir / picture.path).read_bytes())
    state_db = tmp_path / "state.sqlite3"
    shutil.copyfile(library.state_db, state_db)
    qdrant_path = tmp_path / "qdrant"
    shutil.copytree(library.qdrant_path, qdrant_path)
    urls_file = tmp_path / "urls" / "image_urls.txt"
    urls_file.parent.mkdir()
    urls_file.write_text(url_file_text(library, failed_urls(state_db)))
    env = {
        **rabbit_env(rabbit_queue),
        "URLS_FILE": str(urls_file),
        "IMAGES_DIR": str(images_dir),
        "STATE_DB": str(state_db),
        "QDRANT_PATH": str(qdrant_path),
        "QDRANT_COLLECTION": COLLECTION,
        "LOG_LEVEL": "WARNING",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    copy = Books(library, tmp_path, urls_file, images_dir, state_db, qdrant_path, env)
    copy.state(
        "INSERT INTO urls (url, status, attempts, updated_at) VALUES (?, 'pending', 0, '2026-12-01T00:00:00Z')",
        PENDING_URL,
    )
    return copy


def audit_json(code: int) -> dict:
    result = runner.invoke(app, ["audit", "--json"])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    data = json.loads(result.stdout)
    assert data["schema_version"] == 1
    return data


def test_balanced_books_exit_0_and_the_counts_agree(books: Books) -> None:
    data = audit_json(0)
    pictures = books.library.pictures
    done_urls = sum(len(p.urls) for p in pictures)
    assert data["balanced"] is True
    assert data["problems"] == []
    assert data["counts"] == {
        "url_file": {"urls": done_urls + 2, "invalid_lines": 1},  # + the failed and the pending URL
        "state": {"rows": done_urls + 2, "pending": 1, "retrying": 0, "done": done_urls, "failed": 1},
        "images": {"files": len(pictures), "done_images": len(pictures)},
        "index": {"exists": True, "model": data["counts"]["index"]["model"], "points": len(pictures)},
        "queue": {"queued": 0, "dead_lettered": 0},
        "library": {"recorded": 0, "done": 0, "failed": 0, "in_folder": None, "error": None},  # no PHOTOS_DIR
    }
    assert data["counts"]["index"]["model"].startswith("dy-tiny")
    assert data["in_flight"]["pending"] == 1
    text = runner.invoke(app, ["audit"])
    assert text.exit_code == 0, text.output
    assert "the books balance" in text.stdout


# -- one imbalance each: (what to break, the kinds it must produce, what the problem names) ---------------


def _append_url(books: Books) -> str:
    url = "https://photos.example/added-later.jpg"
    with books.urls_file.open("a") as handle:
        handle.write(f"{url}\n")
    return url


def _forget_reason(books: Books) -> str:
    url = books.failed_url()
    books.state("UPDATE urls SET last_error = NULL WHERE url = ?", url)
    return url


def _remove_line(books: Books) -> str:
    url = books.failed_url()
    text = books.urls_file.read_text()
    books.urls_file.write_text("\n".join(line for line in text.splitlines() if line != url) + "\n")
    return url


def _lose_sha(books: Books) -> set[str]:
    books.state("UPDATE urls SET sha256 = NULL, path = NULL WHERE url = ?", books.single.urls[0])
    return {books.single.urls[0], books.single.sha256}  # the row, and the point it no longer leads to


def _delete_file(books: Books) -> str:
    (books.images_dir / books.single.path).unlink()
    return books.single.sha256


def _corrupt_file(books: Books) -> str:
    (books.images_dir / books.single.path).write_bytes(jpeg(99_999))
    return books.single.sha256


def _drop_point(books: Books) -> str:
    with books.qdrant() as client:
        client.delete(books.single.id)
    return books.single.urls[0]


def _drop_second_url(books: Books) -> str:
    with books.qdrant() as client:
        client.set_payload(books.twice.id, {"urls": [books.twice.urls[0]]})
    return books.twice.urls[1]


def _other_model(books: Books) -> str:
    with books.qdrant() as client:
        client.set_payload(books.single.id, {"model": "ViT-B-32"})
    return books.single.sha256


def _copy_under_wrong_id(books: Books) -> str:
    with books.qdrant() as client:
        point = client.retrieve(books.single.id)
        assert point is not None
        assert point.vector is not None
        client.insert(str(uuid.uuid4()), point.vector, point.payload)
    return books.single.sha256


def _url_now_failed(books: Books) -> str:
    books.state("UPDATE urls SET status = 'failed', last_error = 'http_404: gone' WHERE url = ?", books.single.urls[0])
    return books.single.sha256


def _stray_file(books: Books) -> str:
    data = jpeg(88_888)
    write_atomic(books.images_dir, stored_path(sha256_hex(data), "jpg"), data)
    return sha256_hex(data)


def _dead_letter_without_reason(books: Books) -> str:
    books.dead_letter(books.single, "")  # no reason header: RabbitMQ's x-death absent too
    return books.single.sha256


Breakage = Callable[[Books], str | set[str]]
CASES: dict[str, tuple[Breakage, set[str]]] = {
    "a URL added to the file the downloader never saw": (_append_url, {"url_not_seen"}),
    "a failed URL without its reason": (_forget_reason, {"failed_without_reason"}),
    "a state row whose URL left the file": (_remove_line, {"url_not_in_file"}),
    "a done URL without its sha256": (_lose_sha, {"done_without_image", "point_without_url"}),
    "a stored file deleted": (_delete_file, {"image_missing", "point_without_image"}),
    "a stored file's bytes changed": (_corrupt_file, {"image_corrupt"}),
    "a point deleted": (_drop_point, {"point_missing"}),
    "a URL lost from its point's urls": (_drop_second_url, {"url_missing_from_point"}),
    "a point made by another model": (_other_model, {"point_wrong_model"}),
    "a point under an id not derived from its sha256": (_copy_under_wrong_id, {"point_wrong_id"}),
    "a point no done URL leads to": (_url_now_failed, {"point_without_url"}),
    "a stored file no point holds": (_stray_file, {"image_without_point"}),
    "a dead letter without a reason": (_dead_letter_without_reason, {"dead_letter_without_reason"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_imbalance_exits_1_and_is_named(books: Books, case: str) -> None:
    breakage, kinds = CASES[case]
    culprit = breakage(books)
    names = {culprit} if isinstance(culprit, str) else culprit
    data = audit_json(1)
    assert data["balanced"] is False
    assert set(data["problem_counts"]) == kinds, data["problems"]
    assert all({problem["url"], problem["sha256"]} & names for problem in data["problems"]), data["problems"]
    text = runner.invoke(app, ["audit"])
    assert text.exit_code == 1
    assert all(kind in text.stdout for kind in kinds)


def test_every_kind_of_problem_has_a_test() -> None:
    """The photo library's kinds have theirs in tests/library/test_library_audit.py."""
    assert set(KINDS) - set(LIBRARY_KINDS) == {kind for _, kinds in CASES.values() for kind in kinds}


# -- work in flight is not a problem --------------------------------------------------------------------


def test_a_missing_point_whose_message_is_queued_is_in_flight(books: Books) -> None:
    _drop_point(books)
    settings = books.library.rabbit_settings().model_copy(update={"rabbitmq_queue": books.env["RABBITMQ_QUEUE"]})
    asyncio.run(publish(settings, messages(books.single)))
    data = audit_json(0)
    assert data["in_flight"]["queued_for_index"] == 1
    assert data["counts"]["queue"]["queued"] == 1


def test_a_missing_point_the_indexer_dead_lettered_with_a_reason_is_accounted_for(books: Books) -> None:
    _drop_point(books)
    books.dead_letter(books.single, "not_an_image")
    data = audit_json(0)
    assert data["in_flight"]["dead_lettered"] == 1
    assert data["counts"]["queue"]["dead_lettered"] == 1


def test_a_missing_point_whose_message_the_broker_has_not_confirmed_is_in_flight(books: Books) -> None:
    _drop_point(books)
    books.state("UPDATE urls SET published = 0 WHERE url = ?", books.single.urls[0])
    assert audit_json(0)["in_flight"]["unconfirmed"] == 1


# -- what it cannot read ------------------------------------------------------------------------------


def test_a_missing_url_file_is_a_setting_to_fix_exit_2(books: Books) -> None:
    books.urls_file.unlink()
    result = runner.invoke(app, ["audit", "--json"])
    assert result.exit_code == 2, result.output
    assert "URLS_FILE" in result.stderr
    assert result.stdout == ""


def test_an_unreachable_broker_exits_3(books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RABBITMQ_PORT", str(free_port()))
    result = runner.invoke(app, ["audit", "--json"])
    assert result.exit_code == 3, result.output
    assert "RabbitMQ" in result.stderr


# -- the stack gives the app the URL file ---------------------------------------------------------------


def test_compose_gives_the_app_the_downloaders_url_file_read_only() -> None:
    services = load_compose()["services"]
    app_file = Path(service_environment("app")["URLS_FILE"])
    assert app_file == Path(service_environment("downloader")["URLS_FILE"])
    mounts = {volume.split(":")[1]: volume for volume in services["app"]["volumes"]}
    downloader_mounts = {volume.split(":")[1]: volume for volume in services["downloader"]["volumes"]}
    folder = str(app_file.parent)
    assert mounts[folder].endswith(":ro")
    assert mounts[folder].split(":")[0] == downloader_mounts[folder].split(":")[0]  # the same host folder
