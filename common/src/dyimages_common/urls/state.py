"""The downloader's per-URL state (SQLite, STATE_DB), and read-only views of it for people.

The downloader is the only writer. The app's status page and the `dyimages` CLI read it to show
counts and recent failures with their reasons. The database uses the rollback journal (not WAL)
so a reader on a read-only mount can open it.

Statuses: ``pending`` (seen, not yet fetched), ``retrying`` (a transient failure, will be tried
again), ``done`` (stored; ``sha256``/``path`` set; ``published`` once the broker confirmed the
message), ``failed`` (a permanent failure; ``last_error`` says why).

The same bytes reached by several URLs are one image (one file): every such URL is ``done`` with
the same ``sha256``, and each row carries its own ``message`` (one message per stored image and
source URL, each with its own ``url``); a row's ``published`` is set once the broker confirmed
that row's message.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS urls (
    url         TEXT PRIMARY KEY,
    status      TEXT NOT NULL CHECK (status IN ('pending', 'retrying', 'done', 'failed')),
    sha256      TEXT,
    path        TEXT,
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    published   INTEGER NOT NULL DEFAULT 0,
    updated_at  TEXT NOT NULL,
    message     TEXT
);
CREATE INDEX IF NOT EXISTS urls_status ON urls (status, updated_at);
CREATE INDEX IF NOT EXISTS urls_sha256 ON urls (sha256);
"""

STATUSES = ("pending", "retrying", "done", "failed")

# Columns added after the first schema: (name, declaration), added to older databases on open.
_ADDED_COLUMNS = (("message", "TEXT"),)


@dataclass(frozen=True)
class UrlFailure:
    url: str
    reason: str
    attempts: int
    updated_at: str


def open_state(path: Path) -> sqlite3.Connection:
    """Open (creating if needed) the state database for writing.

    ``synchronous=FULL``, because the journal mode is DELETE (the rollback journal, so read-only
    readers work). In that mode FULL is the level at which a committed transaction survives a
    power cut and the database cannot be corrupted by one: SQLite syncs the journal before
    writing the database and the database before deleting the journal. NORMAL skips a sync there,
    and in rollback mode a power cut at the wrong moment can then corrupt the file or lose a
    commit the caller was told is done (NORMAL is safe only with WAL).

    The order that keeps a ``done`` row true is the writer's: the image file is fsynced and its
    folder fsynced (``storage.write_atomic``) before the row is even written; FULL then makes the
    row itself durable before the message is published. So after a power cut a row says ``done``
    only for a file that is on disk; at worst a file is on disk with its row still ``pending``,
    and the next run finds the same bytes and records them.
    """
    connection = connect_for_writing(path)
    connection.executescript(SCHEMA)
    present = {row[1] for row in connection.execute("PRAGMA table_info(urls)")}
    for name, declaration in _ADDED_COLUMNS:
        if name not in present:
            connection.execute(f"ALTER TABLE urls ADD COLUMN {name} {declaration}")
    return connection


def connect_for_writing(path: Path) -> sqlite3.Connection:
    """A writer's connection with the durability :func:`open_state` explains (the library's state too)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=DELETE")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("PRAGMA busy_timeout=5000")
    return connection


class StateRecovering(sqlite3.OperationalError):
    """The downloader was killed mid-write: its rollback journal must be replayed by a writer first."""


@contextlib.contextmanager
def read_only(path: Path, table: str = "urls") -> Iterator[sqlite3.Connection | None]:
    """A read-only connection, or None when there is no state yet (no file, or no ``table`` yet).
    The photo library's state (``dyimages_common.library.state``) is read the same way."""
    if not path.exists():
        yield None
        return
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        connection.execute("PRAGMA busy_timeout=5000")
        try:
            has_table = connection.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
            ).fetchone()
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
            # A hot journal left by a killed downloader: only a writer may roll it back.
            raise StateRecovering(
                f"the downloader state {path} is being recovered after the downloader stopped mid-write; "
                "it is readable again once the downloader runs"
            ) from exc
        yield connection if has_table else None
    finally:
        connection.close()


def status_counts(path: Path) -> dict[str, int]:
    """URLs per status (every status present, zero where none); all zero if there is no state yet."""
    counts = dict.fromkeys(STATUSES, 0)
    with read_only(path) as connection:
        if connection is not None:
            for status, count in connection.execute("SELECT status, COUNT(*) FROM urls GROUP BY status"):
                counts[status] = count
    return counts


def recent_failures(path: Path, limit: int = 50) -> list[UrlFailure]:
    """Permanent failures, newest first."""
    with read_only(path) as connection:
        if connection is None:
            return []
        rows = connection.execute(
            "SELECT url, COALESCE(last_error, ''), attempts, updated_at FROM urls "
            "WHERE status = 'failed' ORDER BY updated_at DESC LIMIT ?",
            (limit,),
        ).fetchall()
    return [UrlFailure(*row) for row in rows]


def urls_for(path: Path, sha256: str) -> list[str]:
    """Every URL whose bytes are this image (for reindexing with all sources)."""
    with read_only(path) as connection:
        if connection is None:
            return []
        rows = connection.execute(
            "SELECT url FROM urls WHERE sha256 = ? AND status = 'done' ORDER BY url", (sha256,)
        ).fetchall()
    return [row[0] for row in rows]


@dataclass(frozen=True)
class UrlRow:
    """One URL's whole row, for checks that look at every URL (``dyimages audit``)."""

    url: str
    status: str
    sha256: str | None
    path: str | None
    last_error: str | None
    published: bool


def all_rows(path: Path) -> list[UrlRow]:
    """Every URL's row; empty if there is no state yet."""
    with read_only(path) as connection:
        if connection is None:
            return []
        rows = connection.execute("SELECT url, status, sha256, path, last_error, published FROM urls").fetchall()
    return [UrlRow(*row[:5], published=bool(row[5])) for row in rows]
