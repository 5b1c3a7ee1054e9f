"""`dyimages reindex`: build a new collection beside the serving one, then swap the alias atomically.

1. :func:`start` makes (or resumes) the collection being built for the model the embedding service
   runs now (:func:`dyimages_common.store.builds.begin_build`; the alias ``<name>__building`` tells the
   indexer to write there too).
2. Every stored image is republished: the images directory is the source of truth; each
   content-addressed file becomes ``ImageDownloaded`` messages again, one per source URL (the indexer
   merges them into one point's ``urls``), its format, size and EXIF facts read from the file, its URLs
   from the downloader's state (falling back to the URLs the index holds), and every other fact the
   message shares with the point (the download time, ...) carried over from the point the index holds.
   The photo library's images are republished from its state (one ``LibraryFiles`` message each, every
   path, the newest ``seq`` so far). Messages are persistent and each one is confirmed by the broker.
3. :func:`finish` waits until the new collection holds every republished image, then swaps the alias
   (:func:`dyimages_common.store.builds.swap`). Searches read the old collection until that moment; a
   reindex that fails or is killed before it leaves the old one serving, and running it again resumes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from dyimages_common.embeddings.client import ModelInfo
from dyimages_common.images.exif import read_exif
from dyimages_common.images.storage import FORMATS, UnsafePathError, check_stored_path
from dyimages_common.library import state as library_state
from dyimages_common.messaging.messages import ImageDownloaded, ImageMessage
from dyimages_common.messaging.rabbit import connect, declare_topology, persistent_message
from dyimages_common.store import builds as index_builds
from dyimages_common.store.errors import StoreUnavailable
from dyimages_common.store.points import ImagePoint
from dyimages_common.store.protocol import ImageStore
from dyimages_common.urls import state as url_state
from search_app.settings import AppSettings

log = logging.getLogger(__name__)

# Unconfirmed publishes in flight at once: enough to hide the broker round trip.
CONFIRM_WINDOW = 256
# The message fields a reindex can take from the point the index holds (each URL is a message of its own).
CARRIED = (set(ImageDownloaded.model_fields) & set(ImagePoint.model_fields)) - {"url"}


@dataclass
class ReindexResult:
    found: int = 0  # stored files
    images: int = 0  # files with messages
    published: int = 0  # messages confirmed by the broker
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    library_images: int = 0  # images of the photo library (each one message, every path)


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


def build_messages(settings: AppSettings, path: str, index: ImageStore | None) -> list[ImageDownloaded]:
    """The messages for one stored file, one per known source URL (the indexer merges them into one
    point's ``urls``); raises ValueError with the reason when none can be made."""
    file = settings.images_dir / path
    sha256 = path.rsplit("/", 1)[-1].split(".", 1)[0]
    stat = file.stat()
    try:
        with Image.open(file) as image:  # header only: the downloader checked the data when it stored it
            fmt, width, height, exif = image.format, image.width, image.height, read_exif(image)
    except (UnidentifiedImageError, OSError) as exc:
        raise ValueError(f"not a readable image: {exc}") from None
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt} is not accepted")
    held: ImagePoint | None = index.point(sha256) if index is not None else None
    urls = url_state.urls_for(settings.state_db_path, sha256) or (list(held.urls) if held else [])
    if not urls:
        raise ValueError("no source URL known (not in the downloader state nor in the index)")
    from_file = {
        "sha256": sha256,
        "path": path,
        "content_type": FORMATS[fmt][1],
        "width": width,
        "height": height,
        "bytes": stat.st_size,
        **{name: value for name, value in asdict(exif).items() if value is not None},
    }
    # Every other fact the message shares with the point (download time, EXIF the file no longer shows, and
    # any field added to both models later) is carried over from the point the index holds.
    carried = {name: getattr(held, name) for name in CARRIED - from_file.keys()} if held else {}
    facts = {"downloaded_at": datetime.fromtimestamp(stat.st_mtime, tz=UTC)} | carried | from_file
    return [ImageDownloaded(url=url, **{k: v for k, v in facts.items() if v is not None}) for url in urls]


def messages_for(settings: AppSettings, index: ImageStore | None, result: ReindexResult) -> list[ImageMessage]:
    """Every stored image's messages, those of one image next to each other (so they tend to share a batch),
    then the photo library's."""
    messages: list[ImageMessage] = []
    try:
        if index is not None and index.serving() is None:
            index = None
    except StoreUnavailable as exc:
        log.warning("Qdrant is not answering (%s): source URLs come from the downloader state only", exc)
        index = None
    for path in stored_files(settings.images_dir):
        result.found += 1
        try:
            messages += build_messages(settings, path, index)
            result.images += 1
        except (ValueError, OSError, StoreUnavailable) as exc:
            result.skipped.append((path, str(exc)))
            log.warning("not republished: %s", exc, extra={"path": path})
    library = library_state.current_messages(library_state.library_state_path(settings.state_db_path))
    result.library_images = len(library)
    return messages + library


async def _publish(
    settings: AppSettings,
    messages: list[ImageMessage],
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
    settings: AppSettings, messages: list[ImageMessage], on_published: Callable[[int], None] = lambda _: None
) -> int:
    """Publish persistently with publisher confirms; returns how many the broker confirmed."""
    return asyncio.run(_publish(settings, messages, on_published))


def start(index: ImageStore, info: ModelInfo) -> tuple[str, bool]:
    """The collection to build for the model the embedding service runs: (name, resumed)."""
    return index_builds.begin_build(index, dim=info.dim, model=info.model, pretrained=info.pretrained)


class ReindexIncomplete(RuntimeError):
    """The new collection does not hold every republished image yet; the old one still serves."""


# With at most this many images left to wait for, each is looked up by id; more: one scan of the build.
LOOKUP_LIMIT = 256


def _still_missing(index: ImageStore, missing: set[str]) -> set[str]:
    """Which of ``missing`` the collection being built still lacks: by id when few, else one scan."""
    if len(missing) > LOOKUP_LIMIT:
        return set(index_builds.missing_from_build(index, missing))
    build = index_builds.building(index) or index.serving()
    if build is None:
        return missing
    return {sha256 for sha256 in missing if index.point(sha256, build) is None}


def finish(
    index: ImageStore,
    sha256s: set[str],
    *,
    timeout_s: float = 0.0,
    poll_s: float = 1.0,
    on_progress: Callable[[int, int], None] = lambda held, total: None,
) -> tuple[str, str | None]:
    """Wait (up to ``timeout_s``) until the collection being built holds every image of ``sha256s``, then
    swap the alias to it; returns (new, old). ReindexIncomplete, nothing swapped, when time runs out.

    Each poll reads only the build's point count while it is below the number of images (it cannot hold
    them all yet); then the images still missing are looked for, and looked for again only when the count
    moves: never every payload every second.
    """
    deadline = time.monotonic() + timeout_s
    total = len(sha256s)
    missing: set[str] | None = None  # None: not looked for yet (the build cannot hold them all)
    looked_at: int | None = None  # the build's count when the images were last looked for
    while True:
        build = index_builds.building(index) or index.serving()
        count = (index.count(build) or 0) if build else 0
        if (count >= total) if missing is None else (count != looked_at):
            missing = _still_missing(index, set(sha256s) if missing is None else missing)
            looked_at = count
        left = len(missing) if missing is not None else total - min(count, total)  # a lower bound before a look
        on_progress(total - left, total)
        if missing is not None and not missing:
            if index_builds.building(index) is None:  # it served from the start (nothing served before)
                return index.serving() or "", None
            return index_builds.swap(index)
        if time.monotonic() >= deadline:
            first = f" (first: {min(missing)[:12]})" if missing else ""
            raise ReindexIncomplete(
                f"{left} of {total} images are not in the new collection yet{first}; the old collection still "
                "serves searches. Let the indexer run, then `dyimages reindex --finish`"
            )
        time.sleep(poll_s)
