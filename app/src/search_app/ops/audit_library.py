"""The photo library's ledger in `dyimages audit`: the folder, the scanner's state and the points.

The folder (PHOTOS_DIR) is looked at as the scanner looks at it (:func:`dyimages_common.library.walk.walk_library`,
stat only, no photo read again) and held against the library's state and the index: every photo there
is recorded with the stat it has now (done, or refused with a reason); every recorded file is still there;
every done file's content has a point that lists its path; and every library path a point lists is a
done file of that content. Messages the broker has not confirmed yet, messages still queued and dead
letters are work in flight, counted apart.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from dyimages_common.library import state as library_state
from dyimages_common.library.walk import LibraryMissing, Walk, walk_library
from dyimages_common.messaging.messages import MAX_LIBRARY_PATHS
from dyimages_common.store.points import ImagePoint

# Each way the library's books can fail to balance (joined to the audit's own KINDS).
LIBRARY_KINDS: dict[str, str] = {
    "library_file_not_seen": "a photo in PHOTOS_DIR the scanner has not recorded as it is now (new or changed)",
    "library_row_without_file": "the library's state records a file that is no longer in PHOTOS_DIR",
    "library_failed_without_reason": "a refused library file whose state row names no reason",
    "library_point_missing": "a recorded photo's content has no point (nothing queued, no dead letter for it)",
    "library_path_missing_from_point": "a recorded photo's path is not in the `library_paths` of its point",
    "library_path_not_in_folder": "a point lists a library path the state does not record for its content",
}

Flag = Callable[..., None]


@dataclass
class LibraryBooks:
    """The library's side of the ledgers, read once (None of it when PHOTOS_DIR is not set here)."""

    walk: Walk | None  # None: PHOTOS_DIR is not set, or cannot be listed (``error`` says which)
    files: list[library_state.LibraryFile] = field(default_factory=list)
    unpublished: set[str] = field(default_factory=set)
    error: str | None = None


def read_library(photos_dir: Path | None, state_db: Path) -> LibraryBooks:
    state = library_state.library_state_path(state_db)
    files, unpublished = library_state.all_files(state), library_state.unpublished_shas(state)
    if photos_dir is None:
        return LibraryBooks(None, files, unpublished, None if not files else "PHOTOS_DIR is not set here")
    try:
        return LibraryBooks(walk_library(photos_dir), files, unpublished)
    except LibraryMissing as exc:
        return LibraryBooks(None, files, unpublished, str(exc))


def check_library(
    books: LibraryBooks, points: Sequence[ImagePoint], *, queued: int, dead_shas: set[str], flag: Flag
) -> Counter[str]:
    """Flag every imbalance of the library's books; return the work in flight by kind."""
    in_flight: Counter[str] = Counter()
    rows = {row.path: row for row in books.files}
    if books.walk is not None:
        seen = {**books.walk.files, **{path: refusal.stat for path, refusal in books.walk.refused.items()}}
        for path, stat in seen.items():
            row = rows.get(path)
            if row is None or (row.stat != stat and path in books.walk.files):
                flag("library_file_not_seen", "in PHOTOS_DIR, not recorded as it is now", path=path)
        for path in rows:
            if path not in seen and not any(path.startswith(f + "/") for f in books.walk.unlisted):
                flag("library_row_without_file", "recorded, no longer in PHOTOS_DIR", path=path)
    for row in books.files:
        if row.status == "failed" and not (row.last_error or "").strip():
            flag("library_failed_without_reason", "refused, no reason recorded", path=row.path)
    done: dict[str, list[str]] = defaultdict(list)
    for row in books.files:
        if row.status == "done" and row.sha256:
            done[row.sha256].append(row.path)
    by_sha = {point.sha256: point for point in points}
    for sha, paths in done.items():
        point = by_sha.get(sha)
        listed = set(point.library_paths) if point is not None else set()
        missing = [path for path in sorted(paths)[:MAX_LIBRARY_PATHS] if path not in listed]
        if not missing:
            continue
        if sha in books.unpublished or queued > 0 or sha in dead_shas:
            kind = (
                "library_unconfirmed" if sha in books.unpublished else "queued_for_index" if queued else "dead_lettered"
            )
            in_flight[kind] += len(missing)
        elif point is None:
            flag("library_point_missing", "recorded, not in the index", sha256=sha, path=missing[0])
        else:
            for path in missing:
                flag("library_path_missing_from_point", "its content's point does not list it", sha256=sha, path=path)
    for point in points:
        stale = [path for path in point.library_paths if path not in done.get(point.sha256, ())]
        if stale and point.sha256 not in books.unpublished and not queued:
            for path in stale:
                flag(
                    "library_path_not_in_folder",
                    "listed by the point, not recorded with its bytes",
                    sha256=point.sha256,
                    path=path,
                )
    return in_flight
