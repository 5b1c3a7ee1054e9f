"""The embedding service's wire format: paths, request and response models, limits.

Both sides import these: the service (``embedding``) validates requests and writes answers with
them, the clients (:mod:`dyimages_common.embeddings.client`) send and read them. The service needs
nothing else from ``common`` to speak its API (no HTTP client).

An item that cannot be embedded gets ``null`` for its vector and an :class:`ItemFailure` in
``errors``: ``{"reason": "<Reason>", "detail": "<for a person>"}``. The reason is a
:class:`~dyimages_common.reasons.Reason` member, so a client branches on it and records it (the
indexer's dead-letter header) without parsing text; a word a newer service sends that this
version does not know reads as ``unknown``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dyimages_common.reasons import Reason

EMBED_PATH = "/embed"
INFO_PATH = "/info"
HEALTH_PATH = "/health"
MAX_ITEMS_PER_REQUEST = 256


def server_request_timeout(client_timeout_s: float) -> float:
    """How long the service lets a request wait before its batch starts: half the client's timeout,
    leaving the other half for the batch itself (a 256-image batch takes seconds even on a CPU)."""
    return client_timeout_s / 2


class ImageRef(BaseModel):
    """One image of a request: a stored image, a photo of the library, or uploaded bytes.

    ``path`` and ``library_path`` are resolved by the service under its own folder (IMAGES_DIR,
    PHOTOS_DIR), never taken as a file path as they are: a path that leads out is ``unsafe_path``.
    """

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(None, description="Stored path relative to IMAGES_DIR")
    library_path: str | None = Field(None, description="A photo's path relative to PHOTOS_DIR")
    data: str | None = Field(None, description="Image bytes, base64")

    @model_validator(mode="after")
    def _exactly_one(self) -> ImageRef:
        if sum(value is not None for value in (self.path, self.library_path, self.data)) != 1:
            raise ValueError("an image is named by exactly one of `path`, `library_path` or `data`")
        return self


class EmbedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    texts: list[str] | None = Field(None, max_length=MAX_ITEMS_PER_REQUEST)
    images: list[ImageRef] | None = Field(None, max_length=MAX_ITEMS_PER_REQUEST)

    @model_validator(mode="after")
    def _exactly_one_kind(self) -> EmbedRequest:
        if (self.texts is None) == (self.images is None):
            raise ValueError("send exactly one of `texts` or `images`")
        items = self.texts if self.texts is not None else self.images
        if not items:
            raise ValueError("nothing to embed: the list is empty")
        if self.texts is not None and any(not text.strip() for text in self.texts):
            raise ValueError("a text is empty")
        return self


@dataclass(frozen=True)
class ModelIdentity:
    """What made a vector: the OpenCLIP model name and its weights (pretrained tag or checkpoint)."""

    model: str
    pretrained: str

    def __str__(self) -> str:
        return f"{self.model} ({self.pretrained})"


class ItemFailure(BaseModel):
    """Why one item of a request has no vector."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    reason: Reason
    detail: str = ""

    @field_validator("reason", mode="before")
    @classmethod
    def _known_or_unknown(cls, value: Any) -> Reason:
        return Reason.parse(value) if isinstance(value, str | bytes) else value

    def __str__(self) -> str:
        return self.reason.with_detail(self.detail)


class EmbedResponse(BaseModel):
    model: str
    pretrained: str
    dim: int
    vectors: list[list[float] | None]
    errors: list[ItemFailure | None]

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.model, self.pretrained)


class ModelInfo(BaseModel):
    model: str
    pretrained: str
    dim: int
    device: str
    context_length: int

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(self.model, self.pretrained)
