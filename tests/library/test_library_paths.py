"""Library paths from outside (a message, a request, a point) never lead out of PHOTOS_DIR, and reading one
never blocks on a file that is not a regular file."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from dyimages_common.images.storage import UnsafePathError
from dyimages_common.library.paths import (
    LibraryFileError,
    check_library_path,
    folders_of,
    read_library_file,
    resolve_library_path,
)
from dyimages_common.reasons import Reason

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    "path",
    [
        "",
        "/etc/passwd",
        "../x.jpg",
        "a/../../x.jpg",
        "a//b.jpg",
        "./a.jpg",
        "a/./b.jpg",
        "a\\b.jpg",
        "a\nb.jpg",
        "a\x00b.jpg",
        "x" * 256 + ".jpg",
    ],
)
def test_a_path_that_could_lead_out_or_break_a_reader_is_refused(path: str) -> None:
    with pytest.raises(UnsafePathError):
        check_library_path(path)


def test_clean_relative_paths_pass_in_any_script() -> None:
    for path in ("IMG_0001.jpg", "2024/summer/Strand am Meer.jpeg", "家族/写真.HEIC", "a b/c-d_e.png"):
        assert check_library_path(path) == path


def test_a_symlink_inside_that_leads_out_is_refused_one_that_stays_in_is_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "photos", tmp_path / "secret"
    (root / "real").mkdir(parents=True)
    outside.mkdir()
    (outside / "key.jpg").write_bytes(b"secret")
    (root / "real" / "a.jpg").write_bytes(b"photo")
    os.symlink(outside / "key.jpg", root / "out.jpg")
    os.symlink(outside, root / "outdir")
    os.symlink(root / "real" / "a.jpg", root / "in.jpg")
    for path in ("out.jpg", "outdir/key.jpg"):
        with pytest.raises(UnsafePathError, match="outside"):
            resolve_library_path(root, path)
        with pytest.raises(LibraryFileError) as refused:
            read_library_file(root, path, 1000)
        assert refused.value.reason is Reason.UNSAFE_PATH
    assert read_library_file(root, "in.jpg", 1000) == b"photo"


def test_reading_refuses_what_it_cannot_or_must_not_read(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "big.jpg").write_bytes(b"x" * 101)
    (root / "folder.jpg").mkdir()
    os.mkfifo(root / "fifo.jpg")

    def reason(path: str, root_dir: Path | None = root) -> Reason:
        with pytest.raises(LibraryFileError) as refused:
            read_library_file(root_dir, path, 100)
        return refused.value.reason

    assert reason("big.jpg") is Reason.TOO_LARGE
    assert reason("missing.jpg") is Reason.NOT_FOUND
    assert reason("folder.jpg") is Reason.NOT_AN_IMAGE
    assert reason("x.jpg", None) is Reason.NOT_FOUND  # no PHOTOS_DIR in this service
    # A FIFO named like a photo: refused at once, the reader never waits for a writer.
    outcome: list[Reason] = []
    reader = threading.Thread(target=lambda: outcome.append(reason("fifo.jpg")), daemon=True)
    reader.start()
    reader.join(5)
    assert outcome == [Reason.NOT_AN_IMAGE]


def test_folders_of_a_path_are_every_prefix() -> None:
    assert folders_of("a/b/c.jpg") == ["a", "a/b"]
    assert folders_of("c.jpg") == []
