"""The photo library's state (SQLite beside the URL state), and read-only views of it for people.

The downloader's library scanner is the only writer (``downloader.library.ledger``); the app and the CLI
read failures and files from it (rollback journal, so a read-only mount can read it). One row per file
the scanner has settled on, keyed by its path relative to PHOTOS_DIR:

* ``done``: read, hashed and checked; ``sha256`` names its bytes;
* ``failed``: ``last_error`` is ``"<reason>: <detail>"`` (a symlink that leads out, a file that cannot
  be read, not an image, a bomb, ...). It is not read again until it changes or someone asks
  (``dyimages retry``), so a broken file costs one look.

``size``, ``mtime_ns``, ``ctime_ns`` and ``inode`` are the stat the row was made from: a rescan that
finds the same four reads nothing (a library of 100,000 files is rescanned from stat alone), and a
file that vanished while another with the same inode, size and time appeared was renamed (its hash
carries over unread). ``images`` keeps what the check found for each distinct content, so a rename
or a copy needs no second check. ``outbox`` holds each library message until the broker confirmed it:
written in the same transaction as the rows it reports, so a crash loses no change; its ``seq`` is
the message's (the newer list of paths wins on the point).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from pydantic import AwareDatetime, BaseModel, ConfigDict

from dyimages_common.library.walk import Stat
from dyimages_common.messaging.messages import MAX_LIBRARY_PATHS, LibraryFiles
from dyimages_common.urls.state import read_only

SCHEMA = """
CREATE TABLE IF NOT EXISTS files (
    path        TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('done', 'failed')),
    size        INTEGER NOT NULL,
    mtime_ns    INTEGER NOT NULL,
    ctime_ns    INTEGER NOT NULL,
    inode       INTEGER NOT NULL,
    sha256      TEXT,
    last_error  TEXT,
    updated_at  TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS files_sha256 ON files (sha256);
CREATE INDEX IF NOT EXISTS files_status ON files (status, updated_at);
CREATE TABLE IF NOT EXISTS images (
    sha256      TEXT PRIMARY KEY,
    facts       TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    sha256      TEXT NOT NULL,
    message     TEXT NOT NULL
);
"""
STATUSES = ("done", "failed")
TABLE = "files"


class ImageFacts(BaseModel):
    """What the check found in a photo's bytes; kept once per distinct content (``images.facts``)."""

    model_config = ConfigDict(frozen=True)

    content_type: str
    width: int
    height: int
    bytes: int
    taken_at: AwareDatetime | None = None
    camera: str | None = None
    orientation: int | None = None


def library_message(sha256: str, facts: ImageFacts, files: Sequence[tuple[str, int]], seq: int) -> LibraryFiles:
    """The message saying which library files (path, mtime_ns; sorted) hold ``sha256`` now; none: no file."""
    return LibraryFiles(
        sha256=sha256,
        paths=tuple(path for path, _ in files[:MAX_LIBRARY_PATHS]),
        seq=seq,
        modified_at=datetime.fromtimestamp(min(m for _, m in files) / 1e9, UTC) if files else datetime.now(UTC),
        **facts.model_dump(),
    )


def library_state_path(state_db: Path) -> Path:
    """Where the library's state lives: beside the URL state (STATE_DB), in the same volume."""
    return state_db.with_name("library.sqlite3")


@dataclass(frozen=True)
class LibraryFile:
    """One settled file of the library, as the state holds it."""

    path: str
    status: str
    sha256: str | None
    last_error: str | None
    updated_at: str
    stat: Stat  # what the scanner saw when it recorded the file


@dataclass(frozen=True)
class LibraryFailure:
    path: str
    reason: str  # the recorded "<reason>: <detail>"
    updated_at: str


def all_files(state: Path) -> list[LibraryFile]:
    """Every settled file; empty when there is no library state."""
    with read_only(state, TABLE) as connection:
        if connection is None:
            return []
        rows = connection.execute(
            "SELECT path, status, sha256, last_error, updated_at, size, mtime_ns, ctime_ns, inode FROM files"
        ).fetchall()
    return [LibraryFile(*row[:5], stat=Stat(*row[5:])) for row in rows]


def failures(state: Path, limit: int = 50) -> list[LibraryFailure]:
    """Files the scanner refused, newest first (``limit`` -1: all)."""
    with read_only(state, TABLE) as connection:
        if connection is None:
            return []
        rows = connection.execute(
            "SELECT path, COALESCE(last_error, ''), updated_at FROM files WHERE status = 'failed' "
            "ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [LibraryFailure(*row) for row in rows]


def counts(state: Path) -> dict[str, int]:
    """Files per status, and messages still waiting for the broker (``unpublished``)."""
    result = dict.fromkeys((*STATUSES, "unpublished"), 0)
    with read_only(state, TABLE) as connection:
        if connection is not None:
            for status, count in connection.execute("SELECT status, COUNT(*) FROM files GROUP BY status"):
                result[status] = count
            result["unpublished"] = connection.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
    return result


def unpublished_shas(state: Path) -> set[str]:
    """Images whose newest library message the broker has not confirmed yet (work in flight)."""
    with read_only(state, TABLE) as connection:
        if connection is None:
            return set()
        return {row[0] for row in connection.execute("SELECT DISTINCT sha256 FROM outbox")}


def current_messages(state: Path) -> list[LibraryFiles]:
    """A message for every content the library holds now, numbered with the newest ``seq`` so far (what
    ``dyimages reindex`` republishes: a later change of the scanner still wins over it)."""
    with read_only(state, TABLE) as connection:
        if connection is None:
            return []
        row = connection.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
        seq = max(1, row[0] if row else 1)
        facts = {sha: ImageFacts.model_validate_json(text) for sha, text in connection.execute("SELECT * FROM images")}
        files: dict[str, list[tuple[str, int]]] = {}
        for path, sha, mtime in connection.execute(
            "SELECT path, sha256, mtime_ns FROM files WHERE status = 'done' ORDER BY path"
        ):
            files.setdefault(sha, []).append((path, mtime))
    return [library_message(sha, facts[sha], found, seq) for sha, found in sorted(files.items()) if sha in facts]
