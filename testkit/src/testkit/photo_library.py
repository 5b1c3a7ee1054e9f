"""A photo library folder for tests: good photos, hostile and broken files, and a downloader that scans it.

The hostile set is what a real folder can hold: a symlink to a file and one to a folder outside the
library, a file the service may not read, an empty file, text named ``.jpg``, a truncated JPEG, a
decompression bomb (a PNG whose header promises more pixels than the limit), a FIFO named ``.jpg``.

Tests run as root here, and root reads a file whatever its mode. :func:`without_file_override` makes a
child process root without CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH (dropped from its bounding set
before exec, so the new program never gets them), which is what the containers' uid 10001 is anyway: a
file with mode 000 is then unreadable to it, as in production.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from PIL import Image

from dyimages_common.reasons import Reason
from testkit.images import encode, jpeg
from testkit.procs import stop

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH = 1, 2
BOMB_PIXELS = 2000 * 2000  # over the MAX_IMAGE_PIXELS the tests set (1 Mpx), a few KB on disk

# path in the library -> the reason the scanner records for it
HOSTILE: dict[str, Reason] = {
    "hostile/link-out.jpg": Reason.UNSAFE_PATH,
    "hostile/folder-out": Reason.UNSAFE_PATH,
    "hostile/locked.jpg": Reason.UNREADABLE,
    "hostile/empty.jpg": Reason.NOT_AN_IMAGE,
    "hostile/text.jpg": Reason.NOT_AN_IMAGE,
    "hostile/truncated.jpg": Reason.CORRUPT_IMAGE,
    "hostile/bomb.png": Reason.TOO_MANY_PIXELS,
    "hostile/fifo.jpg": Reason.NOT_AN_IMAGE,
}


def broken_past_header(seed: int, size: tuple[int, int] = (96, 72)) -> bytes:
    """A JPEG whose header, limits and end marker are sound but whose scan names a component the frame
    lacks: only decoding it finds it broken (libjpeg: "Invalid component ID"), which the embedding
    service does and the downloader's header check of a library photo does not."""
    data = bytearray(jpeg(seed, size=size))
    scan = data.index(b"\xff\xda")
    data[scan + 5] = 9  # the scan's first component id; the frame has 1, 2 and 3
    return bytes(data)


def bomb() -> bytes:
    return encode(Image.new("RGB", (2000, 2000), (200, 30, 30)), "PNG", optimize=True)


def add_hostile_files(root: Path, outside: Path) -> None:
    """The files of :data:`HOSTILE` under ``root``; ``outside`` is a folder beside the library."""
    folder = root / "hostile"
    folder.mkdir(parents=True, exist_ok=True)
    outside.mkdir(parents=True, exist_ok=True)
    (outside / "secret.jpg").write_bytes(jpeg(900))
    os.symlink(outside / "secret.jpg", folder / "link-out.jpg")
    os.symlink(outside, folder / "folder-out")
    (folder / "locked.jpg").write_bytes(jpeg(901))
    (folder / "locked.jpg").chmod(0)
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("<html>not a photo</html>")
    whole = jpeg(902, size=(640, 480))
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (folder / "bomb.png").write_bytes(bomb())
    os.mkfifo(folder / "fifo.jpg")


def without_file_override() -> None:
    """preexec_fn: the child (root or not) loses the capabilities that let root ignore file modes."""
    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH):
        if libc.prctl(_PR_CAPBSET_DROP, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


@contextlib.contextmanager
def running_downloader(env: Mapping[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``python -m downloader`` (watch mode) without root's file override; stopped with SIGTERM after."""
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "downloader"],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=without_file_override,
        )
    try:
        yield process
    finally:
        stop(process)
