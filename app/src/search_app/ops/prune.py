"""`dyimages prune`: remove the images whose every source URL has left the URL file.

Removing a line from ``URLS_FILE`` stops nothing by itself: the image stays stored and indexed. Prune
finds the points whose every URL (payload ``urls``) is gone from the file, and with ``--yes`` removes,
for each, the downloader's state rows of that image, its stored file and then its point (in that order,
so a run cut short leaves the point, and the next run finds it again and finishes).

A truncated or emptied URL file must never remove anything by itself, so the plan is refused when the
file cannot be read, when it lists no URL, or when it would remove more than ``max_share`` of the
indexed images (half, unless the operator says otherwise). An image is kept when any state row of its
bytes has a URL that is still listed (a URL not yet merged into the point).

Removing needs write access to ``IMAGES_DIR`` and ``STATE_DB``, which only the downloader has (the app
mounts the images volume read-only): ``--yes`` checks that first and refuses before touching anything.
Run it with the downloader stopped (it is the state's only writer while it runs) in a container that
mounts the images volume writable. Afterwards the query cache's generation is raised
(:func:`search_app.search.cache.forget_pages`): no result page cached before, nor one a search was
computing meanwhile, is read again, so a removed image never comes back from Redis.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dyimages_common.images.storage import UnsafePathError, resolve_stored_path
from dyimages_common.store.protocol import ImageStore
from dyimages_common.urls import state as url_state
from dyimages_common.urls.list_format import normalise_url
from search_app.ops.ledgers import StoredPoint, read_url_list, stored_points
from search_app.search.cache import forget_pages
from search_app.settings import AppSettings

MAX_SHARE = 0.5  # refuse to remove more than this share of the indexed images unless told otherwise


class PruneRefused(RuntimeError):
    """Prune will not run as asked (empty URL file, too large a share, no write access): nothing was removed."""


@dataclass
class PrunePlan:
    listed_urls: int
    indexed: int
    remove: list[StoredPoint] = field(default_factory=list)
    removed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "listed_urls": self.listed_urls,
            "indexed": self.indexed,
            "removed": self.removed,
            "images": [{"sha256": p.sha256, "path": p.path, "urls": list(p.urls)} for p in self.remove],
        }


def _canonical(url: str) -> str:
    try:
        return normalise_url(url)
    except ValueError:
        return url


def plan_prune(settings: AppSettings, index: ImageStore, max_share: float = MAX_SHARE) -> PrunePlan:
    """The images whose every URL has left the URL file; PruneRefused when the rule above forbids it."""
    listed = {_canonical(url) for url in read_url_list(settings).urls}
    if not listed:
        raise PruneRefused(f"URLS_FILE={str(settings.urls_file)!r} lists no URL: an emptied file never removes images")
    points = stored_points(index)
    still_listed = {row.sha256 for row in url_state.all_rows(settings.state_db_path) if _canonical(row.url) in listed}
    remove = [
        point
        for point in points
        if point.urls and not any(_canonical(url) in listed for url in point.urls) and point.sha256 not in still_listed
    ]
    if points and len(remove) > max_share * len(points):
        raise PruneRefused(
            f"pruning would remove {len(remove)} of {len(points)} indexed images, more than {max_share:.0%}: is "
            f"URLS_FILE truncated? Nothing was removed (--max-share raises the limit)"
        )
    return PrunePlan(listed_urls=len(listed), indexed=len(points), remove=remove)


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)


def apply_prune(settings: AppSettings, index: ImageStore, plan: PrunePlan) -> PrunePlan:
    """Remove the planned images: state rows, stored files, then points; result pages cached in Redis."""
    images_dir, state_db = settings.images_dir, settings.state_db_path
    if plan.remove and not (
        _writable(images_dir) and (_writable(state_db) if state_db.exists() else _writable(state_db.parent))
    ):
        raise PruneRefused(
            f"removing needs write access to IMAGES_DIR={str(images_dir)!r} and STATE_DB={str(state_db)!r}, which "
            "only the downloader's container has: stop the downloader and run prune where the images volume is "
            "mounted writable. Nothing was removed"
        )
    if plan.remove and state_db.exists():
        connection = url_state.open_state(state_db)
        try:
            with connection:
                connection.executemany("DELETE FROM urls WHERE sha256 = ?", [(p.sha256,) for p in plan.remove])
        finally:
            connection.close()
    for point in plan.remove:
        try:
            resolve_stored_path(images_dir, point.path).unlink(missing_ok=True)
        except UnsafePathError:
            continue  # a payload path outside IMAGES_DIR is never a file to delete
    if plan.remove:
        index.delete([p.id for p in plan.remove])
        forget_pages(settings.redis_url)  # Redis not answering: it logs why
    plan.removed = True
    return plan
