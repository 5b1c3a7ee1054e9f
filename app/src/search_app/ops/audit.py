"""`dyimages audit`: do the pipeline's books balance? Every URL, file, point and dead letter accounted for.

Four ledgers are read, each read-only, and held against each other:

* the URL file (``URLS_FILE``, parsed as the downloader parses it);
* the downloader's state (``STATE_DB``): one row per URL, ``pending``/``retrying``/``done``/``failed``;
* the images folder (``IMAGES_DIR``): one content-addressed file per distinct image;
* the index (Qdrant): one point per distinct image, its ``urls``, the ``model`` that made it;

plus the queues (work-queue depth, and every dead letter, peeked and never consumed).

The books balance when each URL of the file is done, failed with a reason, or still pending or
retrying; each done URL's file is stored with bytes that hash to its name, and its image's point
lists that URL and was made by the collection's model; each dead letter names its reason; and
nothing is orphaned (a file or a point no done URL leads to, a point whose file is gone, a state
row whose URL left the file). Each way this can fail is one problem ``kind`` (:data:`KINDS`).

A done URL whose point is still missing while messages wait in the work queue, or whose message
the broker has not confirmed yet, is work in flight, counted apart and not a problem; so is a done
URL the indexer dead-lettered (the dead letter names why). Run it on an idle pipeline for the full
answer: a batch the indexer is embedding at that very moment is neither queued nor written.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from dyimages_common.store.points import point_id
from dyimages_common.store.protocol import ImageStore
from dyimages_common.urls import state as url_state
from search_app.ops.audit_library import LIBRARY_KINDS, LibraryBooks, check_library
from search_app.ops.ledgers import Ledgers, StoredPoint, UrlFileUnreadable, hash_matches, read_ledgers, stored_points
from search_app.settings import AppSettings

__all__ = ["KINDS", "AuditReport", "Problem", "StoredPoint", "UrlFileUnreadable", "audit", "check", "stored_points"]

# Every kind of problem the audit names, with what it means (the CLI's --help and the README list these).
KINDS: dict[str, str] = {
    "url_not_seen": "a URL of the file has no row in the downloader's state",
    "failed_without_reason": "a failed URL whose state row names no reason",
    "url_not_in_file": "a state row whose URL is no longer in the URL file",
    "done_without_image": "a done URL whose row records no sha256 or path",
    "image_missing": "a done URL's image file is not in IMAGES_DIR",
    "image_corrupt": "a stored file whose bytes do not hash to its name",
    "point_missing": "a done URL's image has no point (nothing queued, no dead letter for it)",
    "url_missing_from_point": "a done URL is not in the `urls` of its image's point",
    "point_wrong_model": "a point whose payload `model` is not the collection's model",
    "point_wrong_id": "a point whose id is not the one derived from its sha256",
    "point_without_image": "a point whose image file is missing",
    "point_without_url": "a point no done URL leads to",
    "image_without_point": "a stored file no point holds and no done URL leads to",
    "dead_letter_without_reason": "a dead-lettered message with no reason header",
    **LIBRARY_KINDS,
}
NO_REASON = "unknown"  # what search_app.ops.dead_letters reports for a dead letter without any reason


@dataclass(frozen=True)
class Problem:
    kind: str
    detail: str
    url: str | None = None
    sha256: str | None = None
    path: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AuditReport:
    counts: dict[str, Any]
    in_flight: dict[str, int]
    problems: list[Problem] = field(default_factory=list)

    @property
    def balanced(self) -> bool:
        return not self.problems

    def kinds(self) -> Counter[str]:
        return Counter(problem.kind for problem in self.problems)

    def to_json(self) -> dict[str, Any]:
        return {
            "balanced": self.balanced,
            "counts": self.counts,
            "in_flight": self.in_flight,
            "problem_counts": dict(sorted(self.kinds().items())),
            "problems": [problem.to_json() for problem in self.problems],
        }


# -- checking ----------------------------------------------------------------------------------------


def check(ledgers: Ledgers, images_dir: Path) -> AuditReport:
    """Hold the ledgers against each other; every imbalance becomes a :class:`Problem`."""
    problems: list[Problem] = []

    def flag(kind: str, detail: str, **where: str | None) -> None:
        problems.append(Problem(kind, detail, **where))  # type: ignore[arg-type]

    in_file = set(ledgers.url_file)
    rows = {row.url: row for row in ledgers.rows}
    points_by_sha = {point.sha256: point for point in ledgers.points}
    dead_shas = {letter.sha256 for letter in ledgers.dead_letters if letter.sha256}
    dead_urls = {letter.url for letter in ledgers.dead_letters if letter.url}
    in_flight = Counter({"pending": 0, "retrying": 0, "unconfirmed": 0, "queued_for_index": 0, "dead_lettered": 0})
    in_flight["library_unconfirmed"] = 0

    # URL file <-> state
    for url in ledgers.url_file:
        row = rows.get(url)
        if row is None:
            flag("url_not_seen", "in the URL file, not in the downloader's state", url=url)
        elif row.status in ("pending", "retrying"):
            in_flight[row.status] += 1
        elif row.status == "failed" and not (row.last_error or "").strip():
            flag("failed_without_reason", "failed, no reason recorded", url=url)
    for row in ledgers.rows:
        if row.url not in in_file:
            flag("url_not_in_file", f"state says {row.status}; the URL left the file", url=row.url, sha256=row.sha256)

    # done URLs -> file -> point
    done = [row for row in ledgers.rows if row.status == "done" and row.url in in_file]
    done_shas: dict[str, list[url_state.UrlRow]] = defaultdict(list)
    for row in done:
        if not row.sha256 or not row.path:
            flag("done_without_image", "done, but no sha256/path recorded", url=row.url)
            continue
        done_shas[row.sha256].append(row)
    verified: dict[str, bool] = {}
    for sha, sha_rows in done_shas.items():
        path = sha_rows[0].path or ""
        if ledgers.files.get(sha) != path:
            for row in sha_rows:
                flag("image_missing", f"{path} is not in IMAGES_DIR", url=row.url, sha256=sha, path=path)
            continue
        verified[sha] = hash_matches(images_dir, path, sha)
        point = points_by_sha.get(sha)
        for row in sha_rows:
            if point is not None and row.url in point.urls:
                continue
            if not row.published or ledgers.queued > 0:
                in_flight["unconfirmed" if not row.published else "queued_for_index"] += 1
            elif sha in dead_shas or row.url in dead_urls:
                in_flight["dead_lettered"] += 1
            elif point is None:
                flag("point_missing", "done and stored, not in the index", url=row.url, sha256=sha)
            else:
                flag("url_missing_from_point", "its image's point does not list it", url=row.url, sha256=sha)

    # files: intact, and held by a point or led to by a done URL
    for sha, path in ledgers.files.items():
        if verified.get(sha, True) is False or (sha not in verified and not hash_matches(images_dir, path, sha)):
            flag("image_corrupt", "the bytes do not hash to the file's name", sha256=sha, path=path)
        if sha not in points_by_sha and sha not in done_shas:
            flag("image_without_point", "stored, but no point and no done URL", sha256=sha, path=path)

    # points: right id, right model, a file behind, a done URL leading to it
    for point in ledgers.points:
        if point.id != point_id(point.sha256):
            flag("point_wrong_id", f"id {point.id}", sha256=point.sha256, path=point.path)
        if ledgers.collection_model is not None and point.model != ledgers.collection_model:
            flag(
                "point_wrong_model",
                f"made by {point.model!r}; the collection holds {ledgers.collection_model!r}",
                sha256=point.sha256,
            )
        from_library = bool(point.point.library_paths)  # read from PHOTOS_DIR: no stored file, maybe no URL
        if point.sha256 not in ledgers.files and (point.urls or not from_library):
            flag("point_without_image", "no file in IMAGES_DIR", sha256=point.sha256, path=point.path)
        if point.sha256 not in done_shas and not from_library:
            flag("point_without_url", "no done URL in the file (nor a library file) leads to it", sha256=point.sha256)
    if ledgers.library is not None:
        in_flight.update(
            check_library(
                ledgers.library,
                [p.point for p in ledgers.points],
                queued=ledgers.queued,
                dead_shas=dead_shas,
                flag=flag,
            )
        )

    for letter in ledgers.dead_letters:
        if not letter.reason.strip() or letter.reason == NO_REASON:
            flag("dead_letter_without_reason", letter.body[:120], url=letter.url, sha256=letter.sha256)

    statuses = Counter(row.status for row in ledgers.rows)
    counts = {
        "url_file": {"urls": len(ledgers.url_file), "invalid_lines": ledgers.invalid_lines},
        "state": {
            "rows": len(ledgers.rows),
            **{status: statuses.get(status, 0) for status in url_state.STATUSES},
        },
        "images": {"files": len(ledgers.files), "done_images": len(done_shas)},
        "index": {
            "exists": ledgers.collection_exists,
            "model": ledgers.collection_model,
            "points": len(ledgers.points),
        },
        "queue": {"queued": ledgers.queued, "dead_lettered": len(ledgers.dead_letters)},
        "library": library_counts(ledgers.library),
    }
    return AuditReport(counts=counts, in_flight=dict(in_flight), problems=problems)


def library_counts(books: LibraryBooks | None) -> dict[str, Any]:
    """The library's files by state, the photos in PHOTOS_DIR, and why the folder could not be read."""
    statuses = Counter(row.status for row in books.files) if books else Counter()
    walk = books.walk if books else None
    return {
        "recorded": sum(statuses.values()),
        "done": statuses.get("done", 0),
        "failed": statuses.get("failed", 0),
        "in_folder": None if walk is None else len(walk.files) + len(walk.refused),
        "error": books.error if books else None,
    }


def audit(settings: AppSettings, index: ImageStore) -> AuditReport:
    """Read every ledger and check them (the CLI's `audit`, and the soak's oracle)."""
    return check(read_ledgers(settings, index), settings.images_dir)
