"""The payload of an image's point, built from its messages and merged with what is already stored.

The same bytes reached from several URLs are one image and one point: its ``urls`` (and their
``domains``) are the union of every message seen, in the order first seen; ``url`` stays the
first URL. ``revision`` changes on every write and lets a writer check that nobody changed the
point between its read and its write (see :mod:`indexer.store`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from dyimages_common.messages import ImageDownloaded
from dyimages_common.points import url_domain

REVISION_FIELD = "revision"


def _unique(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def point_payload(
    existing: Mapping[str, Any] | None,
    events: Sequence[ImageDownloaded],
    *,
    model: str,
    indexed_at: datetime,
    revision: str,
) -> dict[str, Any]:
    """The payload to write for one image: ``events`` (one or more messages for the same sha256)
    merged into the ``existing`` payload, if the point is already stored."""
    if not events:
        raise ValueError("a point needs at least one message")
    first = events[0]
    if any(event.sha256 != first.sha256 for event in events):
        raise ValueError("messages for different images cannot share a point")
    old = dict(existing or {})
    old_urls = old.get("urls") or ([old["url"]] if old.get("url") else [])
    urls = _unique([*old_urls, *(event.url for event in events)])
    downloaded_at = old.get("downloaded_at") or _iso(min(event.downloaded_at for event in events))
    return {
        "sha256": first.sha256,
        "path": first.path,
        "url": urls[0],
        "urls": urls,
        "domains": _unique(url_domain(url) for url in urls),
        "content_type": first.content_type,
        "width": first.width,
        "height": first.height,
        "bytes": first.bytes,
        "downloaded_at": downloaded_at,
        "indexed_at": _iso(indexed_at),
        "model": model,
        REVISION_FIELD: revision,
    }
