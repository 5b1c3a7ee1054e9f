"""What one look at the folder means against the state (pure bookkeeping, real folders for the walk)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from downloader.library.changes import Known, Settling, plan_changes
from dyimages_common.library.walk import Stat, walk_library
from dyimages_common.reasons import Reason

pytestmark = pytest.mark.unit


def known_from(root: Path, sha: str = "a" * 64) -> dict[str, Known]:
    return {path: Known(stat, "done", sha) for path, stat in walk_library(root).files.items()}


def test_the_walk_sees_photos_by_stat_alone_and_refuses_links_out(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "2024" / ".thumbnails").mkdir(parents=True)
    (root / "2024" / "a.JPG").write_bytes(b"1")
    (root / "2024" / ".thumbnails" / "a.jpg").write_bytes(b"hidden")
    (root / ".part-b.jpg").write_bytes(b"a copier's temporary file")
    (root / "notes.txt").write_text("not a photo")
    os.symlink(root / "2024" / "a.JPG", root / "link-in.jpg")
    os.symlink("/etc/hostname", root / "link-out.jpg")
    os.symlink("/etc", root / "etc")
    os.symlink(root / "2024" / "gone.jpg", root / "dangling.jpg")
    os.symlink(root / "2024", root / "loop")
    os.mkfifo(root / "fifo.jpg")
    walk = walk_library(root)
    assert sorted(walk.files) == ["2024/a.JPG", "link-in.jpg"]
    assert walk.files["link-in.jpg"].inode == walk.files["2024/a.JPG"].inode
    assert {path: refusal.reason for path, refusal in walk.refused.items()} == {
        "link-out.jpg": Reason.UNSAFE_PATH,
        "etc": Reason.UNSAFE_PATH,
        "dangling.jpg": Reason.UNREADABLE,
        "fifo.jpg": Reason.NOT_AN_IMAGE,
    }


def test_a_new_file_is_read_only_once_its_stat_held_still(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    settling = Settling(settle_s=2.0)
    (root / "a.jpg").write_bytes(b"12")
    assert plan_changes({}, walk_library(root), settling, now=100.0).ready == {}
    with (root / "a.jpg").open("ab") as growing:
        growing.write(b"34")
    assert plan_changes({}, walk_library(root), settling, now=103.0).ready == {}  # grew: the clock starts again
    assert plan_changes({}, walk_library(root), settling, now=104.0).ready == {}
    assert list(plan_changes({}, walk_library(root), settling, now=105.0).ready) == ["a.jpg"]
    assert len(settling) == 0


def test_a_rename_or_move_carries_its_hash_and_reads_nothing(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "x").mkdir(parents=True)
    (root / "a.jpg").write_bytes(b"a")
    known = known_from(root)
    (root / "y").mkdir()
    os.rename(root / "a.jpg", root / "y" / "b.jpg")
    plan = plan_changes(known, walk_library(root), Settling(2.0), now=0.0)
    assert [(old, new) for old, new, _ in plan.renamed] == [("a.jpg", "y/b.jpg")]
    assert plan.gone == []
    assert plan.ready == {}


def test_changed_bytes_at_the_same_path_are_read_again_deleted_files_go(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    (root / "b.jpg").write_bytes(b"b")
    known = known_from(root)
    (root / "a.jpg").write_bytes(b"new bytes")
    (root / "b.jpg").unlink()
    plan = plan_changes(known, walk_library(root), Settling(0.0), now=0.0)
    assert list(plan.ready) == ["a.jpg"]
    assert plan.gone == ["b.jpg"]
    assert plan.unchanged == 0


def test_unchanged_files_cost_nothing_and_a_refused_one_is_not_looked_at_again(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    root.mkdir()
    (root / "a.jpg").write_bytes(b"a")
    os.symlink("/etc/hostname", root / "out.jpg")
    walk = walk_library(root)
    known = known_from(root) | {"out.jpg": Known(walk.refused["out.jpg"].stat, "failed", None)}
    plan = plan_changes(known, walk, Settling(2.0), now=0.0)
    assert (plan.changes, plan.unchanged) == (0, 1)


def test_files_under_an_unlisted_folder_or_in_an_emptied_folder_are_held_not_removed(tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "locked").mkdir(parents=True)
    (root / "locked" / "a.jpg").write_bytes(b"a")
    (root / "b.jpg").write_bytes(b"b")
    known = known_from(root)
    walk = walk_library(root)
    walk.files.pop("locked/a.jpg")
    walk.unlisted.append("locked")  # as when scandir is refused (root reads every folder)
    plan = plan_changes(known, walk, Settling(2.0), now=0.0)
    assert (plan.gone, plan.held) == ([], 1)
    for path in ("locked/a.jpg", "b.jpg"):
        (root / path).unlink()
    plan = plan_changes(known, walk_library(root), Settling(2.0), now=0.0)  # looks like an unmounted share
    assert (plan.gone, plan.held) == ([], 2)


def test_a_stat_is_the_same_file_after_a_rename_not_after_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "a.jpg"
    path.write_bytes(b"a")
    before = Stat.of(path.stat())
    os.rename(path, tmp_path / "b.jpg")
    assert before.same_file(Stat.of((tmp_path / "b.jpg").stat()))
    (tmp_path / "b.jpg").write_bytes(b"bb")
    assert not before.same_file(Stat.of((tmp_path / "b.jpg").stat()))
