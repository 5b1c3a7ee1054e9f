"""Turning a batch of message bodies into the images to embed, and the :class:`Reason` a message is refused for.

Work is by position in the batch, so the consumer can map results back to its messages. Two
messages for the same bytes (two URLs, or a redelivery) become one image: embedded once,
written as one point with both URLs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from dyimages_common.messaging.messages import ImageDownloaded
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
    path: str
    indices: list[int] = field(default_factory=list)
    events: list[ImageDownloaded] = field(default_factory=list)


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
            event = ImageDownloaded.model_validate_json(body)
        except ValidationError as exc:
            refusals.append(refusal_for(index, exc))
            continue
        image = images.setdefault(event.sha256, Image(event.sha256, event.path))
        image.indices.append(index)
        image.events.append(event)
    return list(images.values()), refusals
