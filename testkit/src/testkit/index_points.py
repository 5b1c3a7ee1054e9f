"""Points written by a test the way the indexer writes them: through the store seam and the point model.

For unit tests that choose their own vectors: the payload comes from ``ImagePoint.merged`` (never a dict
written by hand), the write is the seam's conditional write, the collection is made behind the alias.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from dyimages_common.images.storage import stored_path
from dyimages_common.messaging.messages import ImageDownloaded, ImageMessage, LibraryFiles
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store import builds as index_builds
from dyimages_common.store.factory import open_store
from dyimages_common.store.protocol import ImageStore
from dyimages_common.store.types import ImageVector

MODEL = "test"


def open_index(path: Path, name: str = "images") -> ImageStore:
    """An index in an embedded folder (this process holds it until ``close()``)."""
    return open_store(load_settings(QdrantSettings, qdrant_path=path, qdrant_collection=name))


def fake_sha(n: int) -> str:
    return f"{n:064x}"


def add_point(
    index: ImageStore,
    sha256: str,
    vector: np.ndarray,
    url: str,
    *,
    content_type: str = "image/jpeg",
    size: tuple[int, int] = (64, 48),
    model: str = MODEL,
    downloaded_at: datetime | None = None,
    library_paths: Sequence[str] = (),
    **exif: Any,
) -> None:
    """Index one image (``exif``: taken_at, camera, orientation) with this vector; with ``library_paths``, as
    found in the photo folder too (a library message beside the download's)."""
    extension = {"image/png": "png", "image/webp": "webp", "image/gif": "gif"}.get(content_type, "jpg")
    event = ImageDownloaded(
        sha256=sha256,
        path=stored_path(sha256, extension),
        url=url,
        content_type=content_type,
        width=size[0],
        height=size[1],
        bytes=1000,
        downloaded_at=downloaded_at or datetime.now(UTC),
        **exif,
    )
    events: list[ImageMessage] = [event]
    if library_paths:
        facts = event.model_dump(include={"content_type", "width", "height", "bytes", *exif})
        events.append(
            LibraryFiles(sha256=sha256, paths=tuple(library_paths), seq=1, modified_at=event.downloaded_at, **facts)
        )
    vector = np.asarray(vector, dtype=np.float32)
    for target in index_builds.write_targets(index, dim=len(vector), model=model, pretrained=None):
        index.write(target, [ImageVector(sha256, vector, events)], model=model)
