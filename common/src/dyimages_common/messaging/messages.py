"""The messages the downloader publishes on the work queue (RABBITMQ_QUEUE), one per image and source.

Two sources, two schema versions. A web download is :class:`ImageDownloaded`, ``schema_version`` 1, as
it always was: one message per stored image and source URL. A photo in the library (PHOTOS_DIR,
indexed where it lies) is :class:`LibraryFiles`, ``schema_version`` 2, with ``"source": "library"``:
which library files hold these bytes now (every path, none when the last one left), numbered by the
scanner's ``seq`` so that a point keeps the newest list whatever order messages arrive in. A consumer
from before version 2 validates every body as version 1 and refuses a library message on its
``schema_version`` (``unsupported_schema``, dead-lettered with that reason) rather than reading a
library path as a stored image.

Publish with ``message.model_dump_json()``; consume with :func:`parse_message`, which refuses an
unknown schema version, a malformed hash, a path that is not the stored image's own content-addressed
path, or a library path that could lead out of the folder.
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PositiveInt, model_validator

from dyimages_common.images.storage import CONTENT_TYPES, check_stored_path
from dyimages_common.library.paths import check_library_path

SCHEMA_VERSION = 1
LIBRARY_SCHEMA_VERSION = 2
SHA256_PATTERN = r"^[0-9a-f]{64}$"
MAX_LIBRARY_PATHS = 256  # copies of one photo listed on its point; more are left out (and logged)


class ImageDownloaded(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = SCHEMA_VERSION
    sha256: str = Field(pattern=SHA256_PATTERN)
    path: str = Field(description="Relative to IMAGES_DIR: ab/cd/<sha256>.<ext>")
    url: str = Field(pattern=r"^https?://", max_length=8192)
    content_type: str
    width: PositiveInt
    height: PositiveInt
    bytes: PositiveInt
    downloaded_at: AwareDatetime
    # Optional EXIF facts (schema 1 stays: messages without them still validate as None).
    taken_at: AwareDatetime | None = Field(default=None, description="EXIF DateTimeOriginal, as an aware datetime")
    camera: str | None = Field(default=None, max_length=128, description="EXIF Make + Model")
    orientation: int | None = Field(default=None, ge=1, le=8, description="EXIF Orientation")

    @model_validator(mode="after")
    def _path_is_the_stored_path(self) -> ImageDownloaded:
        check_stored_path(self.path)
        if not self.path.split("/")[-1].startswith(self.sha256 + "."):
            raise ValueError("path does not belong to sha256")
        if self.content_type not in CONTENT_TYPES:
            raise ValueError(f"content_type {self.content_type!r} is not an accepted image type")
        return self


class LibraryFiles(BaseModel):
    """Which files of the photo library hold these bytes now (an empty ``paths``: none any more).

    The scanner sends one whenever the set changes (a photo added, renamed, moved, overwritten or
    deleted); the indexer makes the point's ``library_paths`` this list when ``seq`` is not older than
    the point's, embeds only when the point does not exist yet, and removes a point left with no source.
    The image facts are the ones the scanner's check found when it first read the bytes.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[2] = LIBRARY_SCHEMA_VERSION
    source: Literal["library"] = "library"
    sha256: str = Field(pattern=SHA256_PATTERN)
    paths: tuple[str, ...] = Field(max_length=MAX_LIBRARY_PATHS, description="Relative to PHOTOS_DIR, POSIX")
    seq: PositiveInt = Field(description="The scanner's change number: a higher one is newer")
    content_type: str
    width: PositiveInt
    height: PositiveInt
    bytes: PositiveInt
    modified_at: AwareDatetime = Field(description="The file's modification time, the date when EXIF has none")
    taken_at: AwareDatetime | None = None
    camera: str | None = Field(default=None, max_length=128)
    orientation: int | None = Field(default=None, ge=1, le=8)

    @model_validator(mode="after")
    def _paths_stay_inside(self) -> LibraryFiles:
        for path in self.paths:
            check_library_path(path)
        if len(set(self.paths)) != len(self.paths):
            raise ValueError("a path is listed twice")
        if self.content_type not in CONTENT_TYPES:
            raise ValueError(f"content_type {self.content_type!r} is not an accepted image type")
        return self


ImageMessage = ImageDownloaded | LibraryFiles


def parse_message(body: bytes | str) -> ImageMessage:
    """The message a work-queue body holds, by its ``schema_version`` (none: 1); raises ValidationError.

    A version this code does not know is validated as version 1, so the error names ``schema_version``.
    """
    try:
        peeked = json.loads(body)
    except ValueError:
        peeked = None  # ImageDownloaded reports it as invalid JSON
    version = peeked.get("schema_version", SCHEMA_VERSION) if isinstance(peeked, dict) else SCHEMA_VERSION
    model: type[ImageMessage] = LibraryFiles if version == LIBRARY_SCHEMA_VERSION else ImageDownloaded
    return model.model_validate_json(body)
