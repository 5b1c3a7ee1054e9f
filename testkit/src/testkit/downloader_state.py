"""A downloader process's folder and environment for a test, and watching its URL state (read-only,
like the app and the CLI)."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path


def downloader_env(folder: Path, queue: str, urls: list[str], **extra: str) -> tuple[dict[str, str], Path]:
    """The environment of a downloader working in ``folder`` on ``urls`` (written to urls.txt), and the
    path of its state database."""
    from testkit.rabbit import rabbit_env

    (folder / "urls.txt").write_text("".join(f"{url}\n" for url in urls))
    env = {
        **rabbit_env(queue),
        "URLS_FILE": str(folder / "urls.txt"),
        "IMAGES_DIR": str(folder / "images"),
        **extra,
    }
    return env, folder / "images" / ".state" / "downloader.sqlite3"


@dataclass(frozen=True)
class UrlRow:
    status: str
    attempts: int
    last_error: str | None
    updated_at: str


def url_row(state_db: Path, url: str) -> UrlRow | None:
    if not state_db.exists():
        return None
    connection = sqlite3.connect(f"file:{state_db}?mode=ro", uri=True)
    try:
        row = connection.execute(
            "SELECT status, attempts, last_error, updated_at FROM urls WHERE url = ?", (url,)
        ).fetchone()
    except sqlite3.OperationalError:  # no table yet, or the writer holds a lock a moment
        return None
    finally:
        connection.close()
    return UrlRow(*row) if row else None


def wait_for_row(
    state_db: Path,
    url: str,
    condition: Callable[[UrlRow], bool],
    what: str,
    *,
    process: subprocess.Popen[bytes] | None = None,
    timeout: float = 60.0,
) -> UrlRow:
    """Poll until ``url``'s row satisfies ``condition``; fail early if ``process`` (the downloader) exits."""
    deadline = time.monotonic() + timeout
    row = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the downloader exited with {process.returncode} before {what}")
        row = url_row(state_db, url)
        if row is not None and condition(row):
            return row
        time.sleep(0.1)
    raise AssertionError(f"not within {timeout} s: {what}; last row of {url}: {row}")


def wait_for_log(path: Path, text: str, timeout: float = 30.0) -> None:
    """Until a process's log file holds ``text``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text!r} not logged in {timeout} s:\n{path.read_text()[-2000:] if path.exists() else ''}")
