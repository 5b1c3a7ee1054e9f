"""Durability of a stored image and of its state row.

A power cut cannot be simulated here, so which descriptors ``os.fsync`` is called on is watched
in-process: ``os.fsync`` is wrapped (the real fsync still runs) and each call is recorded with the
path of its descriptor. That is a stand-in for a power cut, named so; the kills the downloader can
really suffer are tested with real processes in ``downloader/tests/test_durability.py``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from dyimages_common.urls.state import open_state

pytestmark = pytest.mark.unit

DATA = b"\xff\xd8 not decoded here, only stored \xff\xd9"


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Path]]:
    """Every fsync and rename, in order: ("fsync-dir" | "fsync-file" | "replace", path)."""
    recorded: list[tuple[str, Path]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        real_fsync(fd)
        kind = "fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file"
        recorded.append((kind, Path(os.readlink(f"/proc/self/fd/{fd}"))))

    def replace(src: str, dst: str) -> None:
        real_replace(src, dst)
        recorded.append(("replace", Path(dst)))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return recorded


def test_the_folders_are_fsynced_after_the_rename(tmp_path: Path, calls: list[tuple[str, Path]]) -> None:
    path = stored_path(sha256_hex(DATA), "jpg")
    target = write_atomic(tmp_path, path, DATA)
    root = tmp_path.resolve()
    renamed = calls.index(("replace", target))
    assert any(kind == "fsync-file" for kind, _ in calls[:renamed])  # the data, before its name
    after = calls[renamed + 1 :]
    # ab/cd/ holds the new name; ab/ and the root hold the folders' names, possibly just created.
    assert {path for kind, path in after if kind == "fsync-dir"} >= {target.parent, target.parent.parent, root}


def test_an_existing_file_is_fsynced_again_before_it_is_trusted(tmp_path: Path, calls: list[tuple[str, Path]]) -> None:
    """A writer killed between its rename and its folder fsync leaves a file whose name a power cut
    could still undo; the next writer of the same bytes makes it durable before saying stored."""
    path = stored_path(sha256_hex(DATA), "jpg")
    target = tmp_path.resolve() / path
    target.parent.mkdir(parents=True)
    target.write_bytes(DATA)  # renamed into place by a writer that died then
    write_atomic(tmp_path, path, DATA)
    assert ("fsync-file", target) in calls
    assert ("fsync-dir", target.parent) in calls
    assert not any(kind == "replace" for kind, _ in calls)  # and nothing rewritten


def test_the_state_commits_with_synchronous_full_in_rollback_journal_mode(tmp_path: Path) -> None:
    connection = open_state(tmp_path / "state.sqlite3")
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
        assert connection.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        connection.close()
