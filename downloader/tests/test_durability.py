"""A row never says ``done`` for an image that is not on disk: the downloader killed (SIGKILL) at
each step of storing an image it can reach, then run again.

The real downloader process is killed by a small wrapper (``kill_at_step.py``) at the named step.
A SIGKILL is not a power cut: what the kernel has cached survives it. So the order of the steps
is checked here with real kills, and the step a power cut would also need (the folder's fsync
after the rename) is checked by watching ``os.fsync`` in that process (no power cut can be
simulated); the file-level fsyncs themselves are checked in ``common/tests/test_storage_durability.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from dyimages_common.images.storage import resolve_stored_path, sha256_hex
from dyimages_common.urls.state import open_state
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg, png

pytestmark = pytest.mark.integration

WRAPPER = Path(__file__).with_name("kill_at_step.py")
STEPS = ["file_fsynced", "renamed", "folder_fsynced", "mid_commit", "row_committed"]


def _rows(images_dir: Path) -> dict[str, tuple[str, str | None, str | None, int]]:
    """url -> (status, sha256, path, published), read by a writer so a killed commit is rolled back
    the way the downloader's next start rolls it back."""
    connection = open_state(images_dir / ".state" / "downloader.sqlite3")
    try:
        rows = connection.execute("SELECT url, status, sha256, path, published FROM urls").fetchall()
    finally:
        connection.close()
    return {url: (status, sha, path, published) for url, status, sha, path, published in rows}


def _assert_done_means_stored(images_dir: Path) -> int:
    done = 0
    for url, (status, sha, path, _) in _rows(images_dir).items():
        if status == "done":
            assert sha is not None, url
            assert path is not None, url
            file = resolve_stored_path(images_dir, path)
            assert file.is_file(), f"{url} is done but {path} is missing"
            assert sha256_hex(file.read_bytes()) == sha, f"{url} is done but {path} holds other bytes"
            done += 1
    return done


@pytest.mark.parametrize("step", STEPS)
def test_a_kill_at_any_step_never_leaves_done_without_its_file(
    tmp_path: Path, image_server: ImageServer, rabbit_environment: dict[str, str], fast_env: dict[str, str], step: str
) -> None:
    bodies = {"/a.jpg": jpeg(41), "/b.png": png(42), "/c.jpg": jpeg(43)}
    urls = [image_server.add(path, Route(body=body)) for path, body in bodies.items()]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    images_dir = tmp_path / "images"
    env = {
        **os.environ,
        **rabbit_environment,
        **fast_env,
        "URLS_FILE": str(tmp_path / "urls.txt"),
        "IMAGES_DIR": str(images_dir),
        "METRICS_PORT": "0",
        "DOWNLOADER_CONCURRENCY": "1",
    }

    killed = subprocess.run(
        [sys.executable, str(WRAPPER)], env={**env, "KILL_AT": step}, capture_output=True, text=True, timeout=60
    )
    assert killed.returncode == -signal.SIGKILL, f"not killed at {step}: {killed.returncode}\n{killed.stderr[-3000:]}"
    done_after_kill = _assert_done_means_stored(images_dir)
    if step == "row_committed":
        assert done_after_kill >= 1  # rows are group-committed: one commit may mark several done
    else:
        assert done_after_kill == 0  # the first image to reach the step died there

    again = subprocess.run(
        [sys.executable, "-m", "downloader", "--once"], env=env, capture_output=True, text=True, timeout=60
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert _assert_done_means_stored(images_dir) == len(urls)
    assert all(published == 1 for *_, published in _rows(images_dir).values())
