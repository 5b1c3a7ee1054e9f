"""`dyimages audit`'s photo library ledger, one imbalance at a time: a real folder, a state written by the
scanner's own ledger, and points as the indexer writes them. The whole audit through the CLI on a library
the real pipeline built is in test_library_pipeline.py."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from downloader.library.ledger import Changes, LibraryLedger, Read, Refused
from dyimages_common.images.storage import sha256_hex
from dyimages_common.library.state import ImageFacts, library_state_path
from dyimages_common.library.walk import walk_library
from dyimages_common.reasons import Reason
from dyimages_common.store.points import ImagePoint
from search_app.ops.audit_library import LIBRARY_KINDS, check_library, read_library
from testkit.images import jpeg

pytestmark = pytest.mark.unit

FACTS = ImageFacts(content_type="image/jpeg", width=64, height=48, bytes=100)


@dataclass
class Folder:
    root: Path
    state_db: Path
    data: dict[str, bytes]
    points: dict[str, ImagePoint] = field(default_factory=dict)

    @property
    def state(self) -> Path:
        return library_state_path(self.state_db)

    def audit(self, *, queued: int = 0, dead: frozenset[str] = frozenset()) -> tuple[set[str], dict[str, int]]:
        found: list[str] = []
        books = read_library(self.root, self.state_db)
        in_flight = check_library(
            books,
            list(self.points.values()),
            queued=queued,
            dead_shas=set(dead),
            flag=lambda kind, *_, **__: found.append(kind),
        )
        return set(found), dict(in_flight)


@pytest.fixture
def folder(tmp_path: Path) -> Folder:
    """Two photos and a refused file, recorded by the scanner's ledger, their points written: balanced."""
    root = tmp_path / "photos"
    (root / "2024").mkdir(parents=True)
    data = {"2024/a.jpg": jpeg(1), "b.jpg": jpeg(2)}
    for path, body in data.items():
        (root / path).write_bytes(body)
    (root / "broken.jpg").write_bytes(b"not a photo")
    walk = walk_library(root)
    ledger = LibraryLedger(library_state_path(tmp_path / "downloader.sqlite3"))
    messages = ledger.record(
        Changes(
            read=[Read(path, walk.files[path], sha256_hex(body), FACTS) for path, body in data.items()],
            refused=[Refused("broken.jpg", Reason.NOT_AN_IMAGE, "cannot identify", walk.files["broken.jpg"])],
        )
    )
    ledger.mark_published([key for key, _ in messages])
    ledger.close()
    made = Folder(root, tmp_path / "downloader.sqlite3", data)
    made.points = {
        sha256_hex(body): ImagePoint(sha256=sha256_hex(body), library_paths=[path], library_seq=1)
        for path, body in data.items()
    }
    return made


def test_balanced_books_have_no_problem(folder: Folder) -> None:
    assert folder.audit() == (set(), {})


def _new_photo(folder: Folder) -> None:
    (folder.root / "new.jpg").write_bytes(jpeg(3))


def _photo_changed(folder: Folder) -> None:
    (folder.root / "b.jpg").write_bytes(jpeg(4))


def _photo_deleted(folder: Folder) -> None:
    (folder.root / "b.jpg").unlink()


def _reason_lost(folder: Folder) -> None:
    with sqlite3.connect(folder.state) as connection:
        connection.execute("UPDATE files SET last_error = NULL WHERE status = 'failed'")


def _point_dropped(folder: Folder) -> None:
    del folder.points[sha256_hex(folder.data["b.jpg"])]


def _path_dropped_from_point(folder: Folder) -> None:
    sha = sha256_hex(folder.data["b.jpg"])
    folder.points[sha] = folder.points[sha].model_copy(update={"library_paths": [], "urls": ["https://x.example/b"]})


def _stale_path_on_point(folder: Folder) -> None:
    sha = sha256_hex(folder.data["b.jpg"])
    folder.points[sha] = folder.points[sha].model_copy(update={"library_paths": ["b.jpg", "moved-away.jpg"]})


CASES: dict[str, tuple[Callable[[Folder], None], set[str]]] = {
    "a photo the scanner has not seen": (_new_photo, {"library_file_not_seen"}),
    "a photo changed since it was recorded": (_photo_changed, {"library_file_not_seen"}),
    "a recorded photo deleted": (_photo_deleted, {"library_row_without_file"}),
    "a refused file without its reason": (_reason_lost, {"library_failed_without_reason"}),
    "a recorded photo without a point": (_point_dropped, {"library_point_missing"}),
    "a recorded path missing from its point": (_path_dropped_from_point, {"library_path_missing_from_point"}),
    "a point listing a path the state does not hold": (_stale_path_on_point, {"library_path_not_in_folder"}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_imbalance_is_named(folder: Folder, case: str) -> None:
    breakage, kinds = CASES[case]
    breakage(folder)
    assert folder.audit()[0] == kinds


def test_every_library_kind_has_a_test() -> None:
    assert set(LIBRARY_KINDS) == {kind for _, kinds in CASES.values() for kind in kinds}


def test_work_in_flight_is_counted_apart(folder: Folder) -> None:
    _point_dropped(folder)
    assert folder.audit(queued=3) == (set(), {"queued_for_index": 1})
    assert folder.audit(dead=frozenset({sha256_hex(folder.data["b.jpg"])})) == (set(), {"dead_lettered": 1})
    with sqlite3.connect(folder.state) as connection:  # a message the broker has not confirmed yet
        connection.execute("INSERT INTO outbox (sha256, message) VALUES (?, '{}')", (sha256_hex(folder.data["b.jpg"]),))
    assert folder.audit() == (set(), {"library_unconfirmed": 1})


def test_an_unlisted_folder_or_no_photo_folder_here_is_said_not_guessed(folder: Folder) -> None:
    books = read_library(None, folder.state_db)
    assert books.walk is None
    assert books.error == "PHOTOS_DIR is not set here"
    assert read_library(folder.root / "unmounted", folder.state_db).error is not None
