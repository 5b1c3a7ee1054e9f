"""The message the downloader publishes for each newly stored image (queue RABBITMQ_QUEUE).

Publish with ``message.model_dump_json()``; consume with ``ImageDownloaded.model_validate_json``,
which refuses an unknown schema version, a malformed hash or a path that is not the stored
image's own content-addressed path.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PositiveInt, model_validator

from dyimages_common.images.storage import CONTENT_TYPES, check_stored_path

SCHEMA_VERSION = 1
SHA256_PATTERN = r"^[0-9a-f]{64}$"


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
