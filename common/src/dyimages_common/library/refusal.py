"""A library photo the embedding service refused: its reason goes back to the library's state.

The downloader checks a camera's photo from its header and structure only (a second decode would cost
as much as the model); the embedding service decodes it, once, and may find its data broken past the
header. The indexer cannot write the library's state (the downloader alone does), so instead of
dead-lettering such a message it sends a :class:`LibraryRefusal` to the downloader's control queue
(``<RABBITMQ_QUEUE>.control``, beside the retry requests of :mod:`dyimages_common.urls.refetch`), with
publisher confirms, and only then acknowledges the message. The downloader marks each listed path that
still holds those bytes ``failed`` with the reason: ``dyimages failures`` shows it by its path,
``dyimages retry`` reads it again, and the file is not read again until it changes. An older
downloader that does not know the message dead-letters it, where ``dyimages failures`` shows it too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from dyimages_common.library.paths import check_library_path
from dyimages_common.messaging.messages import MAX_LIBRARY_PATHS, SHA256_PATTERN
from dyimages_common.reasons import Reason
from dyimages_common.urls.refetch import RetryRequest

MAX_DETAIL = 1000  # characters of the detail kept (a decoder's message, never a whole traceback)


class LibraryRefusal(BaseModel):
    """The photo whose bytes hash to ``sha256``, at ``paths`` in PHOTOS_DIR, cannot be embedded: ``reason``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    kind: Literal["library_refusal"] = "library_refusal"
    sha256: str = Field(pattern=SHA256_PATTERN)
    paths: tuple[str, ...] = Field(min_length=1, max_length=MAX_LIBRARY_PATHS)
    reason: Reason
    detail: str = Field(max_length=MAX_DETAIL)

    @model_validator(mode="after")
    def _paths_stay_inside(self) -> LibraryRefusal:
        for path in self.paths:
            check_library_path(path)
        return self

    @classmethod
    def of(cls, sha256: str, paths: tuple[str, ...], reason: Reason, detail: str) -> LibraryRefusal:
        """The refusal with ``detail`` cut to what the message keeps."""
        return cls(sha256=sha256, paths=paths, reason=reason, detail=detail[:MAX_DETAIL])


ControlMessage = RetryRequest | LibraryRefusal
CONTROL_MESSAGE: TypeAdapter[ControlMessage] = TypeAdapter(ControlMessage)
