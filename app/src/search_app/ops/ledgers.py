"""The four ledgers `dyimages audit` holds against each other, each read once and read-only.

The URL file, the downloader's state, the images folder and the index (through the store seam), plus the
queues' depths and every dead letter (peeked, never consumed). :mod:`search_app.ops.audit` checks them.
"""

from __future__ import annotations

import asyncio
import hashlib
from dataclasses import dataclass
from pathlib import Path

from dyimages_common.images.storage import UnsafePathError, check_stored_path, resolve_stored_path
from dyimages_common.messaging.rabbit import queue_depths
from dyimages_common.store.points import ImagePoint
from dyimages_common.store.protocol import ImageStore
from dyimages_common.urls import state as url_state
from dyimages_common.urls.list_format import UrlList, read_url_file
from search_app.ops.audit_library import LibraryBooks, read_library
from search_app.ops.dead_letters import DeadLetter, peek_dead_letters
from search_app.settings import AppSettings

_HASH_CHUNK = 1 << 20


class UrlFileUnreadable(RuntimeError):
    """URLS_FILE cannot be read (missing, not a file, no permission): a setting to fix, not a problem found."""


@dataclass(frozen=True)
class StoredPoint:
    """A point as the index holds it: its id and its payload."""

    id: str
    point: ImagePoint

    @property
    def sha256(self) -> str:
        return self.point.sha256

    @property
    def path(self) -> str:
        return self.point.path

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(self.point.urls)

    @property
    def model(self) -> str | None:
        return self.point.model


@dataclass
class Ledgers:
    """What each source holds, read once."""

    url_file: list[str]
    invalid_lines: int
    rows: list[url_state.UrlRow]
    files: dict[str, str]  # sha256 -> relative path of every stored-image file
    points: list[StoredPoint]
    collection_exists: bool
    collection_model: str | None
    queued: int
    dead_letters: list[DeadLetter]
    library: LibraryBooks | None = None  # the photo library: folder, state (see search_app.ops.audit_library)


def _stored_files(images_dir: Path) -> dict[str, str]:
    """sha256 -> relative path of every file shaped like a stored image (temporary files are not)."""
    files: dict[str, str] = {}
    if not images_dir.is_dir():
        return files
    for path in images_dir.glob("[0-9a-f][0-9a-f]/[0-9a-f][0-9a-f]/*"):
        relative = path.relative_to(images_dir).as_posix()
        try:
            check_stored_path(relative)
        except UnsafePathError:
            continue
        if path.is_file():
            files[path.stem] = relative
    return files


def stored_points(index: ImageStore) -> list[StoredPoint]:
    """Every point of the serving collection ([] when there is none)."""
    serving = index.serving()
    return [StoredPoint(pid, point) for pid, point in index.points(serving)] if serving else []


def read_url_list(settings: AppSettings) -> UrlList:
    """URLS_FILE as the downloader parses it; UrlFileUnreadable when it cannot be read."""
    try:
        return read_url_file(settings.urls_file)
    except OSError as exc:
        raise UrlFileUnreadable(f"URLS_FILE={str(settings.urls_file)!r} cannot be read: {exc.strerror or exc}") from exc


def read_ledgers(settings: AppSettings, index: ImageStore) -> Ledgers:
    """Read every source once. Raises UrlFileUnreadable, sqlite3.Error (state), StoreUnavailable, RabbitMQ's errors."""
    listed = read_url_list(settings)
    rows = url_state.all_rows(settings.state_db_path)
    found = index.collection_model()
    points = stored_points(index)
    depths = asyncio.run(asyncio.wait_for(queue_depths(settings), timeout=30))
    letters = peek_dead_letters(settings, limit=depths["dead_lettered"]) if depths["dead_lettered"] else []
    return Ledgers(
        url_file=listed.urls,
        invalid_lines=len(listed.invalid),
        rows=rows,
        files=_stored_files(settings.images_dir),
        points=points,
        collection_exists=found is not None,
        collection_model=found.model if found else None,
        queued=depths["queued"],
        dead_letters=letters,
        library=read_library(settings.photos_dir, settings.state_db_path),
    )


def hash_matches(images_dir: Path, relative: str, sha256: str) -> bool:
    digest = hashlib.sha256()
    with resolve_stored_path(images_dir, relative).open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest() == sha256
