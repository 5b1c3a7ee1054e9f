"""Readers of the downloader's state while the downloader is away after a crash mid-write."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dyimages_common.urls.state import StateRecovering, open_state, recent_failures, status_counts

pytestmark = pytest.mark.unit

# A writer killed inside a transaction: its rollback journal stays behind, "hot".
KILLED_WRITER = """
import sys, time
from dyimages_common.urls.state import open_state
connection = open_state(__import__("pathlib").Path(sys.argv[1]))
connection.execute("BEGIN IMMEDIATE")
connection.execute("UPDATE urls SET status = 'done'")
connection.execute("PRAGMA cache_size = 1")
for n in range(2000):
    connection.execute("INSERT INTO urls (url, status, updated_at) VALUES (?, 'pending', 'x')", (f"u{n}" * 40,))
print("in transaction", flush=True)
time.sleep(60)
"""


def test_a_hot_journal_reads_as_recovering_then_clears_when_a_writer_opens(tmp_path: Path) -> None:
    db = tmp_path / "state.sqlite3"
    connection = open_state(db)
    connection.execute("INSERT INTO urls (url, status, last_error, updated_at) VALUES ('a', 'failed', 'http_404', 't')")
    connection.close()
    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    assert writer.stdout is not None
    assert writer.stdout.readline().strip() == "in transaction"
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()
    assert Path(f"{db}-journal").exists()

    # Readers open the state read-only (the app mounts it read-only): they cannot roll it back.
    with pytest.raises(StateRecovering, match="readable again once the downloader runs"):
        status_counts(db)

    open_state(db).close()  # the downloader starts again: its connection rolls the journal back
    assert status_counts(db)["failed"] == 1
    assert [f.url for f in recent_failures(db)] == ["a"]
