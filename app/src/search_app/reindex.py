"""Republishing every stored image to the indexer's queue (after a model change, or to repair the index).

The images directory is the source of truth: every content-addressed file becomes ``ImageDownloaded``
messages again, one per source URL (the indexer merges them into one point's ``urls``), with its
format and size read from the file's header and its URLs from the downloader's state (falling back
to the URLs the index already holds). The indexer overwrites points by id, so republishing is
always safe. Messages are persistent and
each one is confirmed by the broker before it counts as published.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from qdrant_client import QdrantClient

from dyimages_common import url_state
from dyimages_common.messages import ImageDownloaded
from dyimages_common.points import payload_urls, point_id
from dyimages_common.rabbit import connect, declare_topology, persistent_message
from dyimages_common.storage import FORMATS, UnsafePathError, check_stored_path
from search_app.search import QDRANT_ERRORS
from search_app.settings import AppSettings

log = logging.getLogger(__name__)

# Unconfirmed publishes in flight at once: enough to hide the broker round trip.
CONFIRM_WINDOW = 256


@dataclass
class ReindexResult:
    found: int = 0  # stored files
    images: int = 0  # files with messages
    published: int = 0  # messages confirmed by the broker
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def stored_files(images_dir: Path) -> Iterator[str]:
    """Relative paths of every stored image (``ab/cd/<sha256>.<ext>``), sorted; other files are ignored."""
    if not images_dir.is_dir():
        return
    for file in sorted(images_dir.glob("??/??/*")):
        relative = file.relative_to(images_dir).as_posix()
        try:
            check_stored_path(relative)
        except UnsafePathError:
            continue
        if file.is_file() and not file.is_symlink():
            yield relative


def _urls_from_index(qdrant: QdrantClient | None, collection: str, sha256: str) -> list[str]:
    if qdrant is None:
        return []
    points = qdrant.retrieve(collection, ids=[point_id(sha256)], with_payload=["urls", "url"])
    if not points or not points[0].payload:
        return []
    payload = points[0].payload
    return payload_urls(payload)


def build_messages(settings: AppSettings, path: str, qdrant: QdrantClient | None) -> list[ImageDownloaded]:
    """The messages for one stored file, one per known source URL (the indexer merges them into one
    point's ``urls``); raises ValueError with the reason when none can be made."""
    file = settings.images_dir / path
    sha256 = path.rsplit("/", 1)[-1].split(".", 1)[0]
    stat = file.stat()
    try:
        with Image.open(file) as image:  # header only: the downloader checked the data when it stored it
            fmt, width, height = image.format, image.width, image.height
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt} is not accepted")
    urls = url_state.urls_for(settings.state_db_path, sha256) or _urls_from_index(
        qdrant, settings.qdrant_collection, sha256
    )
    if not urls:
        raise ValueError("no source URL known (not in the downloader state nor in the index)")
    downloaded_at = datetime.fromtimestamp(stat.st_mtime, tz=UTC)
    return [
        ImageDownloaded(
            sha256=sha256,
            path=path,
            url=url,
            content_type=FORMATS[fmt][1],
            width=width,
            height=height,
            bytes=stat.st_size,
            downloaded_at=downloaded_at,
        )
        for url in urls
    ]


def messages_for(settings: AppSettings, qdrant: QdrantClient | None, result: ReindexResult) -> list[ImageDownloaded]:
    """Every stored image's messages, those of one image next to each other (so they tend to share a batch)."""
    messages: list[ImageDownloaded] = []
    try:
        if qdrant is not None and not qdrant.collection_exists(settings.qdrant_collection):
            qdrant = None
    except QDRANT_ERRORS as exc:
        log.warning("Qdrant is not answering (%s): source URLs come from the downloader state only", exc)
        qdrant = None
    for path in stored_files(settings.images_dir):
        result.found += 1
        try:
            messages += build_messages(settings, path, qdrant)
            result.images += 1
        except (ValueError, OSError, *QDRANT_ERRORS) as exc:
            result.skipped.append((path, str(exc)))
            log.warning("not republished: %s", exc, extra={"path": path})
    return messages


async def _publish(
    settings: AppSettings,
    messages: list[ImageDownloaded],
    on_published: Callable[[int], None],
) -> int:
    connection = await connect(settings, "dyimages-reindex")
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        declared = await declare_topology(channel, settings.rabbitmq_queue)
        exchange = channel.default_exchange
        published = 0
        for start in range(0, len(messages), CONFIRM_WINDOW):
            window = messages[start : start + CONFIRM_WINDOW]
            await asyncio.gather(
                *(
                    exchange.publish(
                        persistent_message(message.model_dump_json().encode()), routing_key=declared.queue.name
                    )
                    for message in window
                )
            )
            published += len(window)
            on_published(len(window))
        return published


def publish_all(
    settings: AppSettings, messages: list[ImageDownloaded], on_published: Callable[[int], None] = lambda _: None
) -> int:
    """Publish persistently with publisher confirms; returns how many the broker confirmed."""
    return asyncio.run(_publish(settings, messages, on_published))
