"""A process killed in the middle of writing loses nothing the store acknowledged (Qdrant Edge's WAL).

A child process writes batches through the seam (the indexer's conditional write) into an Edge folder on
disk, printing each batch's number once ``write`` has returned; the test SIGKILLs it while it keeps
writing (so the kill lands inside a write, or between two), then opens the folder in this process: the
store opens, and every acknowledged image has its point with its URL. (The chaos soak, ``python -m bench
soak``, SIGKILLs the real indexer with work in flight on the same engine and checks with ``dyimages
audit``'s own code that the books balance.)
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.factory import open_store
from testkit import REPO_ROOT

pytestmark = pytest.mark.integration

WRITER = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from pathlib import Path

    import numpy as np

    from dyimages_common.images.storage import stored_path
    from dyimages_common.messaging.messages import ImageDownloaded
    from dyimages_common.settings import QdrantSettings, load_settings
    from dyimages_common.store.builds import ensure_serving
    from dyimages_common.store.factory import open_store
    from dyimages_common.store.types import ImageVector

    index = open_store(load_settings(QdrantSettings, qdrant_path=Path(sys.argv[1])))
    ensure_serving(index, dim=64, model="m", pretrained="none")
    target, rng, batch = index.serving(), np.random.default_rng(1), 0
    while True:
        images = []
        for n in range(batch * 32, batch * 32 + 32):
            sha = f"{n:064x}"
            event = ImageDownloaded(
                sha256=sha, path=stored_path(sha, "jpg"), url=f"https://a.example/{n}.jpg",
                content_type="image/jpeg", width=8, height=8, bytes=100, downloaded_at=datetime.now(UTC),
            )
            vector = rng.standard_normal(64).astype(np.float32)
            images.append(ImageVector(sha, vector / np.linalg.norm(vector), [event]))
        index.write(target, images, model="m")
        print(batch, flush=True)
        batch += 1
    """
)


def _kill_while_writing(folder: Path, after: int) -> int:
    """Run the writer until ``after`` batches are acknowledged, SIGKILL it; the last acknowledged batch."""
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(folder)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    acknowledged = -1
    try:
        assert child.stdout is not None
        for line in child.stdout:
            acknowledged = int(line)
            if acknowledged >= after:
                os.killpg(child.pid, signal.SIGKILL)
                break
    finally:
        if child.poll() is None:
            os.killpg(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    assert acknowledged >= after, child.stderr.read() if child.stderr else ""
    assert child.returncode == -signal.SIGKILL
    return acknowledged


@pytest.mark.parametrize("after", [3, 20])
def test_a_writer_killed_mid_write_loses_no_acknowledged_point(tmp_path: Path, after: int) -> None:
    folder = tmp_path / "store"
    acknowledged = _kill_while_writing(folder, after)
    index = open_store(load_settings(QdrantSettings, qdrant_path=folder))
    try:
        held = {point.sha256: point.urls for _, point in index.points()}
    finally:
        index.close()
    written = range((acknowledged + 1) * 32)
    missing = [n for n in written if f"{n:064x}" not in held]
    assert missing == []
    assert all(held[f"{n:064x}"] == [f"https://a.example/{n}.jpg"] for n in written)
    assert len(held) - len(written) in range(0, 33)  # at most the batch in flight, whole or not at all per point
