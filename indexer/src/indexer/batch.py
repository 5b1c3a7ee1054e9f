"""Turning a batch of message bodies into the images to embed, and the :class:`Reason` a message is refused for.

Work is by position in the batch, so the consumer can map results back to its messages. Two
messages for the same bytes (two URLs, a URL and a library file, or a redelivery) become one image:
embedded at most once, written as one point with every source.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from dyimages_common.embeddings.wire import ImageRef
from dyimages_common.messaging.messages import ImageDownloaded, ImageMessage, LibraryFiles, parse_message
from dyimages_common.reasons import Reason


@dataclass(frozen=True)
class Refusal:
    """Why the message at ``index`` can never be indexed (the reason goes in the dead letter's header)."""

    index: int
    reason: Reason
    detail: str


@dataclass
class Image:
    """One distinct image of the batch and the positions of every message that names it."""

    sha256: str
    indices: list[int] = field(default_factory=list)
    events: list[ImageMessage] = field(default_factory=list)

    @property
    def from_library_only(self) -> bool:
        """Every message is a library one: when the point exists, only its paths change (no vector needed)."""
        return all(isinstance(event, LibraryFiles) for event in self.events)

    @property
    def library_paths(self) -> tuple[str, ...]:
        """The paths of the newest library message of the batch (none: no library message, or none left)."""
        library = [event for event in self.events if isinstance(event, LibraryFiles)]
        return max(library, key=lambda event: event.seq).paths if library else ()

    @property
    def ref(self) -> ImageRef:
        """Where the embedding service reads the bytes: the stored file, else a library file holding them."""
        stored = next((event.path for event in self.events if isinstance(event, ImageDownloaded)), None)
        if stored is not None:
            return ImageRef(path=stored)
        return ImageRef(library_path=self.library_paths[0])


def refusal_for(index: int, error: ValidationError) -> Refusal:
    """Classify a validation error: not JSON, another schema version, or a malformed message."""
    problems = error.errors(include_url=False)
    if any(problem["type"] == "json_invalid" for problem in problems):
        reason = Reason.INVALID_JSON
    elif any(problem["loc"] == ("schema_version",) for problem in problems):
        reason = Reason.UNSUPPORTED_SCHEMA
    else:
        reason = Reason.INVALID_MESSAGE
    detail = "; ".join(f"{'.'.join(map(str, p['loc'])) or 'message'}: {p['msg']}" for p in problems[:5])
    return Refusal(index, reason, detail)


def parse_batch(bodies: Sequence[bytes]) -> tuple[list[Image], list[Refusal]]:
    """The distinct images named by valid messages, and a refusal for each invalid one."""
    images: dict[str, Image] = {}
    refusals: list[Refusal] = []
    for index, body in enumerate(bodies):
        try:
            event = parse_message(body)
        except ValidationError as exc:
            refusals.append(refusal_for(index, exc))
            continue
        image = images.setdefault(event.sha256, Image(event.sha256))
        image.indices.append(index)
        image.events.append(event)
    return list(images.values()), refusals
