"""Writing the library's state (schema and readers: ``dyimages_common.library.state``).

Every change the scanner finds is recorded in one transaction together with the messages it causes,
in the ``outbox``: a message per image whose set of library paths changed, carrying the whole set
(``LibraryFiles``), numbered by the outbox's ``seq``. Only once the broker confirmed a message is its
row deleted; at the next start the rows left are published again. So a crash at any point loses no
change and duplicates only messages, which the indexer applies idempotently. Blocking: the scanner
runs every call on one thread of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from downloader.library.changes import Known
from dyimages_common.library.refusal import LibraryRefusal
from dyimages_common.library.state import SCHEMA, ImageFacts, library_message
from dyimages_common.library.walk import NO_STAT, Stat
from dyimages_common.messaging.messages import MAX_LIBRARY_PATHS
from dyimages_common.reasons import Reason
from dyimages_common.urls.state import connect_for_writing

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Read:
    """A file read and hashed; ``facts`` when its content was checked now (None: already known)."""

    path: str
    stat: Stat
    sha256: str
    facts: ImageFacts | None = None


@dataclass(frozen=True)
class Refused:
    path: str
    reason: Reason
    detail: str
    stat: Stat = NO_STAT


@dataclass
class Changes:
    read: list[Read] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    renamed: list[tuple[str, str, Stat]] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.read or self.refused or self.renamed or self.gone)


def apply_to_known(known: dict[str, Known], changes: Changes) -> None:
    """Keep the scanner's in-memory copy of the state in step with what was just recorded."""
    for old, new, stat in changes.renamed:
        entry = known.pop(old, None)
        if entry is not None:
            known[new] = Known(stat, entry.status, entry.sha256)
    for path in changes.gone:
        known.pop(path, None)
    for read in changes.read:
        known[read.path] = Known(read.stat, "done", read.sha256)
    for refused in changes.refused:
        known[refused.path] = Known(refused.stat, "failed", None)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class LibraryLedger:
    """The scanner's one connection to the library's state."""

    def __init__(self, path: Path) -> None:
        self._db = connect_for_writing(path)
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        self._db.close()

    def known(self) -> dict[str, Known]:
        rows = self._db.execute("SELECT path, size, mtime_ns, ctime_ns, inode, status, sha256 FROM files")
        return {row[0]: Known(Stat(*row[1:5]), row[5], row[6]) for row in rows}

    def has_facts(self, sha256: str) -> bool:
        return self._db.execute("SELECT 1 FROM images WHERE sha256 = ?", (sha256,)).fetchone() is not None

    def unpublished(self) -> list[tuple[str, str]]:
        """(key, body) of every message the broker has not confirmed, oldest first."""
        rows = self._db.execute("SELECT seq, message FROM outbox ORDER BY seq")
        return [(str(seq), message) for seq, message in rows]

    def mark_published(self, keys: Sequence[str]) -> None:
        self._transaction(lambda: self._db.executemany("DELETE FROM outbox WHERE seq = ?", [(int(k),) for k in keys]))

    def reset_failed(self, matches: Callable[[str, str | None], bool]) -> list[str]:
        """Forget the refused files ``matches(path, last_error)`` picks: the next look reads them as new."""
        rows = self._db.execute("SELECT path, last_error FROM files WHERE status = 'failed'").fetchall()
        paths = [path for path, last_error in rows if matches(path, last_error)]
        self._transaction(lambda: self._db.executemany("DELETE FROM files WHERE path = ?", [(p,) for p in paths]))
        return paths

    def record(self, changes: Changes) -> list[tuple[str, str]]:
        """Record ``changes`` and their messages in one transaction; return the messages (key, body)."""
        result: list[tuple[str, str]] = []
        self._transaction(lambda: result.extend(self._record(changes)))
        return result

    def refuse_content(self, refusal: LibraryRefusal) -> tuple[list[Refused], list[tuple[str, str]]]:
        """Mark each path of ``refusal`` that still holds its bytes ``failed`` with its reason, in one
        transaction with the message listing the paths left; return those paths (with the stat kept,
        so an unchanged file is not read again) and the messages (key, body)."""
        refused: list[Refused] = []
        messages: list[tuple[str, str]] = []
        error = refusal.reason.with_detail(refusal.detail)

        def work() -> None:
            for path in refusal.paths:
                row = self._db.execute(
                    "SELECT size, mtime_ns, ctime_ns, inode FROM files WHERE path = ? AND status = 'done' "
                    "AND sha256 = ?",
                    (path, refusal.sha256),
                ).fetchone()
                if row is not None:  # else: changed, gone or refused since the message was sent
                    stat = Stat(*row)
                    self._write_row(path, stat, "failed", None, error)
                    refused.append(Refused(path, refusal.reason, refusal.detail, stat))
            if refused and (message := self._message(refusal.sha256)) is not None:
                messages.append(message)

        self._transaction(work)
        return refused, messages

    def _transaction(self, work: Callable[[], object]) -> None:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            work()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _row(self, path: str) -> tuple[str, str | None] | None:
        return self._db.execute("SELECT status, sha256 FROM files WHERE path = ?", (path,)).fetchone()

    def _write_row(self, path: str, stat: Stat, status: str, sha256: str | None, error: str | None) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO files (path, status, size, mtime_ns, ctime_ns, inode, sha256, last_error, "
            "updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (path, status, stat.size, stat.mtime_ns, stat.ctime_ns, stat.inode, sha256, error, _now()),
        )

    def _record(self, changes: Changes) -> list[tuple[str, str]]:
        touched: set[str] = set()  # images whose set of paths changed

        def leaving(path: str) -> None:
            row = self._row(path)
            if row is not None and row[0] == "done" and row[1]:
                touched.add(row[1])

        for old, new, stat in changes.renamed:
            leaving(old)
            leaving(new)
            row = self._row(old)
            self._db.execute("DELETE FROM files WHERE path IN (?, ?)", (old, new))
            if row is not None:
                self._write_row(new, stat, row[0], row[1], None)
        for path in changes.gone:
            leaving(path)
            self._db.execute("DELETE FROM files WHERE path = ?", (path,))
        for read in changes.read:
            row = self._row(path := read.path)
            if row != ("done", read.sha256):
                leaving(path)
                touched.add(read.sha256)
            if read.facts is not None:
                self._db.execute(
                    "INSERT OR REPLACE INTO images (sha256, facts) VALUES (?, ?)",
                    (read.sha256, read.facts.model_dump_json()),
                )
            self._write_row(path, read.stat, "done", read.sha256, None)
        for refused in changes.refused:
            leaving(refused.path)
            self._write_row(refused.path, refused.stat, "failed", None, refused.reason.with_detail(refused.detail))
        return [message for sha256 in sorted(touched) if (message := self._message(sha256)) is not None]

    def _message(self, sha256: str) -> tuple[str, str] | None:
        """Queue the message saying which paths hold ``sha256`` now; forget its facts when none does."""
        facts_row = self._db.execute("SELECT facts FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        if facts_row is None:
            log.error("no facts recorded for %s; its library message cannot be built", sha256)
            return None
        facts = ImageFacts.model_validate_json(facts_row[0])
        rows = self._db.execute(
            "SELECT path, mtime_ns FROM files WHERE sha256 = ? AND status = 'done' ORDER BY path", (sha256,)
        ).fetchall()
        if len(rows) > MAX_LIBRARY_PATHS:
            log.warning(
                "%d copies of %s in the library; its point lists the first %d", len(rows), sha256, MAX_LIBRARY_PATHS
            )
        seq = self._db.execute("INSERT INTO outbox (sha256, message) VALUES (?, '')", (sha256,)).lastrowid
        assert seq is not None
        body = library_message(sha256, facts, rows, seq).model_dump_json()
        self._db.execute("UPDATE outbox SET message = ? WHERE seq = ?", (body, seq))
        if not rows:
            self._db.execute("DELETE FROM images WHERE sha256 = ?", (sha256,))
        return str(seq), body
