"""``python -m downloader --once`` that SIGKILLs itself at one step of storing an image (test only).

Run as a script by ``test_durability.py``; ``KILL_AT`` names the step. The hooks wrap the real
functions (nothing is faked): the process does the real work up to the step, then dies by SIGKILL
as a crash or an OOM kill would. Steps, in the order one image goes through them:

* ``file_fsynced``: the temporary file is written and fsynced, not yet renamed.
* ``renamed``: the file has its final name; its folder is not yet fsynced.
* ``folder_fsynced``: ``write_atomic`` returned (file and folders fsynced); the row is not written.
  Before killing, the hook checks the folder was fsynced after the rename (``os.fsync`` is wrapped
  to see which descriptors it is called on): a power cut cannot be simulated, so this is how the
  directory fsync is observed. Without it the process exits 3 instead of dying.
* ``mid_commit``: the transaction that marks the row ``done`` is written but not committed.
* ``row_committed``: the row says ``done``; the message is not yet published.
"""

from __future__ import annotations

import os
import runpy
import signal
import stat
import sys
import threading
from pathlib import Path
from typing import Any

import downloader.storing
from downloader.state_db import UrlStateStore

STEP = os.environ["KILL_AT"]
IMAGES = Path(os.environ["IMAGES_DIR"]).resolve()
_real_fsync, _real_replace, _real_write_atomic = os.fsync, os.replace, downloader.storing.write_atomic
_real_commit = UrlStateStore._commit
# Per thread: images are stored by several writer threads at once, and each one's rename and
# folder fsyncs happen in that thread; a shared list would let one writer's rename clear another's.
_seen = threading.local()
_renamed: list[Path] = []


def _folders_fsynced() -> list[Path]:
    if not hasattr(_seen, "folders"):
        _seen.folders = []
    return _seen.folders


def _die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _fsync(fd: int) -> None:
    _real_fsync(fd)
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        _folders_fsynced().append(Path(os.readlink(f"/proc/self/fd/{fd}")))


def _replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
    in_images = Path(dst).resolve().is_relative_to(IMAGES) and ".state" not in Path(dst).parts
    if in_images and STEP == "file_fsynced":
        _die()
    _real_replace(src, dst, *args, **kwargs)
    if in_images:
        _renamed.append(Path(dst).resolve())
        _folders_fsynced().clear()
        if STEP == "renamed":
            _die()


def _write_atomic(images_dir: Path, path: str, data: bytes) -> Path:
    target = _real_write_atomic(images_dir, path, data)
    if STEP == "folder_fsynced":
        if target.parent not in _folders_fsynced():
            print(f"KILL_AT: {target.parent} was not fsynced after the rename", file=sys.stderr)
            sys.stderr.flush()
            os._exit(3)
        _die()
    return target


def _commit(self: UrlStateStore, writes: list[tuple[str, Any]]) -> None:
    marks_done = any("status = 'done'" in sql for sql, _ in writes)
    if marks_done and STEP == "mid_commit":
        self._connection.execute("BEGIN IMMEDIATE")
        for sql, params in writes:
            self._connection.execute(sql, params)
        _die()
    _real_commit(self, writes)
    if marks_done and STEP == "row_committed":
        _die()


os.fsync = _fsync
os.replace = _replace
downloader.storing.write_atomic = _write_atomic  # type: ignore[assignment]
UrlStateStore._commit = _commit  # type: ignore[method-assign]
sys.argv = ["downloader", "--once"]
runpy.run_module("downloader", run_name="__main__", alter_sys=True)
