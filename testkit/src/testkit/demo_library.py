"""The demo model in the real services: its settings, and demo-world pictures indexed by the real pipeline's back half.

The embedding service loads the demo model through its normal settings (``MODEL_NAME``,
``MODEL_CONFIG``, ``MODEL_PRETRAINED`` = the checkpoint file), exactly as a real model. Pictures
are stored content-addressed in the service's images folder, their ``ImageDownloaded`` messages
published to a queue of the caller's own, and the real indexer embeds and writes them (see
:mod:`testkit.indexed_library`, whose :class:`Library` and :class:`Picture` they share).
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

from PIL import Image

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from testkit import DEMO_CHECKPOINT, DEMO_MODEL, DEMO_MODEL_CONFIG
from testkit.demo_world import encoded
from testkit.indexed_library import Library, Picture, library_env, messages, run_indexer
from testkit.messages import publish
from testkit.rabbit import rabbit_env

_FORMATS = {"png": ("png", "image/png"), "jpeg": ("jpg", "image/jpeg")}


def demo_model_env() -> dict[str, str]:
    """The embedding service's model settings for the demo model (pass to ``run_embedding_service``)."""
    return {
        "MODEL_NAME": DEMO_MODEL,
        "MODEL_CONFIG": str(DEMO_MODEL_CONFIG),
        "MODEL_PRETRAINED": str(DEMO_CHECKPOINT),
    }


def store_picture(images_dir: Path, image: Image.Image, urls: tuple[str, ...], fmt: str = "png") -> Picture:
    """Encode ``image`` (``png`` or ``jpeg``) and store it the way the downloader does."""
    return store_file(images_dir, encoded(image, fmt), urls)


def store_file(images_dir: Path, data: bytes, urls: tuple[str, ...]) -> Picture:
    """Store a PNG or JPEG file's bytes content-addressed, with the size and type read from the file."""
    with Image.open(io.BytesIO(data)) as image:
        fmt, width, height = str(image.format).lower(), image.width, image.height
    extension, content_type = _FORMATS[fmt]
    sha = sha256_hex(data)
    path = stored_path(sha, extension)
    write_atomic(images_dir, path, data)
    return Picture(sha, path, urls, content_type, width, height, data)


def index_stored(library: Library, pictures: list[Picture], log_path: Path) -> None:
    """Publish the pictures' messages and run the real indexer until its queue is drained."""
    asyncio.run(publish(library.rabbit_settings(), [m for picture in pictures for m in messages(picture)]))
    run_indexer(library.env, log_path, timeout=600)
    library.pictures += pictures


def new_library(workdir: Path, images_dir: Path, queue: str, embedding_url: str) -> Library:
    """An empty library: its Qdrant folder and state file in ``workdir``, indexed from ``queue``."""
    env = library_env(
        images_dir=images_dir,
        qdrant_path=workdir / "qdrant",
        state_db=workdir / "state.sqlite3",
        queue_env=rabbit_env(queue),
        embedding_url=embedding_url,
    )
    return Library(env=env, images_dir=images_dir, qdrant_path=workdir / "qdrant", state_db=workdir / "state.sqlite3")
