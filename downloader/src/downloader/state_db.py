"""Writing the per-URL state (schema and readers: ``dyimages_common.urls.state``).

SQLite commits cost most of a millisecond each (the journal is synced), which at hundreds of
images per second would stall the event loop. So writes go through a group commit: each caller
awaits its write, writes queued meanwhile are committed together in one transaction on a single
background thread, and a caller resumes only once its row is durable. That keeps the order the
guarantees rely on: the file is on disk before its row says ``done``, the row says ``done`` (with
the message) before the message is published, and ``published`` is set only after the broker
confirmed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dyimages_common.reasons import Reason
from dyimages_common.urls.state import open_state

log = logging.getLogger(__name__)

Write = tuple[str, Sequence[Any]]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class KnownUrl:
    status: str
    attempts: int


@dataclass(frozen=True)
class Snapshot:
    """What the state says at start-up."""

    urls: dict[str, KnownUrl]
    stored: set[str]  # sha256 of every image recorded as done
    unpublished: list[tuple[str, str]]  # (url, message body) done but not confirmed by the broker


class UrlStateStore:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection = open_state(path)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="url-state")
        self._queue: list[tuple[list[Write], asyncio.Future[None]]] = []
        self._wakeup = asyncio.Event()
        self._closing = False
        self._flusher: asyncio.Task[None] | None = None

    def snapshot(self) -> Snapshot:
        """Read everything the downloader needs to resume (before any write)."""
        rows = self._connection.execute("SELECT url, status, attempts FROM urls").fetchall()
        stored = {row[0] for row in self._connection.execute("SELECT DISTINCT sha256 FROM urls WHERE status = 'done'")}
        unpublished = self._connection.execute(
            "SELECT url, message FROM urls WHERE status = 'done' AND published = 0 AND message IS NOT NULL"
        ).fetchall()
        return Snapshot({url: KnownUrl(status, attempts) for url, status, attempts in rows}, stored, unpublished)

    def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_forever(), name="url-state-flusher")

    async def close(self) -> None:
        """Commit what is queued, then close the database."""
        self._closing = True
        self._wakeup.set()
        if self._flusher is not None:
            await self._flusher
        self._executor.submit(self._connection.close).result()
        self._executor.shutdown()

    async def _write(self, *writes: Write) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((list(writes), future))
        self._wakeup.set()
        # The write goes on even if the caller is cancelled (shutdown): shield the wait only.
        await asyncio.shield(future)

    async def _flush_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while not (self._closing and not self._queue):
            await self._wakeup.wait()
            self._wakeup.clear()
            batch, self._queue = self._queue, []
            if not batch:
                continue
            writes = [write for group, _ in batch for write in group]
            try:
                await loop.run_in_executor(self._executor, self._commit, writes)
            except Exception as exc:  # a broken disk or database: every waiter hears it
                log.exception("could not write the URL state")
                outcome: BaseException | None = exc
            else:
                outcome = None
            for _, future in batch:
                if future.done():
                    continue
                if outcome is None:
                    future.set_result(None)
                else:
                    future.set_exception(outcome)

    def _commit(self, writes: list[Write]) -> None:
        connection = self._connection
        connection.execute("BEGIN IMMEDIATE")
        try:
            for sql, params in writes:
                connection.execute(sql, params)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")

    # The writes the downloader makes.

    async def add_pending(self, urls: Sequence[str]) -> None:
        if not urls:
            return
        stamp = now_iso()
        await self._write(
            *[
                (
                    "INSERT OR IGNORE INTO urls (url, status, attempts, updated_at) VALUES (?, 'pending', 0, ?)",
                    (url, stamp),
                )
                for url in urls
            ]
        )

    async def record_retrying(self, url: str, attempts: int, reason: Reason, detail: str) -> None:
        await self._record_error(url, "retrying", attempts, reason, detail)

    async def record_failed(self, url: str, attempts: int, reason: Reason, detail: str) -> None:
        await self._record_error(url, "failed", attempts, reason, detail)

    async def _record_error(self, url: str, status: str, attempts: int, reason: Reason, detail: str) -> None:
        """``last_error`` is ``"<reason>: <detail>"``: readers take the reason back with ``Reason.of_error``."""
        if not isinstance(reason, Reason):  # a bare string would reach the state, the metrics and the CLI
            raise TypeError(f"a failure is recorded with a Reason, not {reason!r}")
        await self._write(
            (
                "UPDATE urls SET status = ?, attempts = ?, last_error = ?, updated_at = ? WHERE url = ?",
                (status, attempts, reason.with_detail(detail), now_iso(), url),
            )
        )

    async def record_done(self, url: str, attempts: int, sha256: str, path: str, message: str) -> None:
        """The URL brought an image: a new one whose file is now on disk, or bytes already stored from
        another URL (no new file). Either way ``message`` is still to be published: it tells the
        indexer to add this URL to the image's point."""
        await self._write(
            (
                "UPDATE urls SET status = 'done', attempts = ?, sha256 = ?, path = ?, message = ?, published = 0, "
                "last_error = NULL, updated_at = ? WHERE url = ?",
                (attempts, sha256, path, message, now_iso(), url),
            )
        )

    async def reset_failed(self, matches: Callable[[str, str | None], bool]) -> list[str]:
        """Failed URLs for which ``matches(url, last_error)`` holds, back to ``pending`` with no attempts
        (a retry request); returns them once that is durable."""
        loop = asyncio.get_running_loop()
        query = "SELECT url, last_error FROM urls WHERE status = 'failed'"

        def matching() -> list[str]:
            rows = self._connection.execute(query).fetchall()
            return [url for url, last_error in rows if matches(url, last_error)]

        # On the writer's own thread (the one connection is never used by two threads at once), and the
        # filtering there too: a large state never holds the event loop.
        urls = await loop.run_in_executor(self._executor, matching)
        if urls:
            stamp = now_iso()
            sql = "UPDATE urls SET status = 'pending', attempts = 0, last_error = NULL, updated_at = ? WHERE url = ?"
            await self._write(*[(sql, (stamp, url)) for url in urls])
        return urls

    async def mark_published(self, urls: Sequence[str]) -> None:
        """The broker confirmed the messages of these URLs."""
        if urls:
            await self._write(*[("UPDATE urls SET published = 1 WHERE url = ?", (url,)) for url in urls])
