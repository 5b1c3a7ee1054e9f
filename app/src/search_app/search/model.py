"""The search's types: what a person asks for (:class:`Query` with its :class:`Filters`) and what comes back
(:class:`Hit`), shared by the engine, the query cache, the UI, the CLI's ``--json`` and the HTTP API.

``Hit`` is the one schema of a result everywhere a program reads one (``dyimages search --json``, the HTTP
API), at :data:`SCHEMA_VERSION`. It serialises without the store's own fields (``INTERNAL_FIELDS``), and its
JSON schema leaves them out too, so the OpenAPI document says what a response holds; the query cache asks
for every field with the context ``{"every_field": True}``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import ConfigDict, Field, SerializationInfo, SerializerFunctionWrapHandler, model_serializer

from dyimages_common.images.storage import FORMATS
from dyimages_common.store.points import INTERNAL_FIELDS, ImagePoint
from dyimages_common.store.types import Found, Order, PointFilter
from search_app.search.vectors import ParsedText, parse_text

SCHEMA_VERSION = 1  # of the results programs read: `dyimages search --json` and the HTTP API
EVERY_FIELD = {"every_field": True}  # serialisation context that keeps the store's own fields
# Short format names (jpeg, png, ...) to content types: what `dyimages search --format` and the API take.
FORMAT_NAMES = {mime.split("/")[1]: mime for _, mime in FORMATS.values()}


@dataclass(frozen=True)
class Filters:
    """Conditions on results; empty means no condition.

    Payload conditions (:meth:`point_filter`): domains, formats, sizes, and ``date_from``/``date_to`` (whole
    UTC days, inclusive, on the payload's ``date``). ``min_score`` is the lowest cosine similarity shown;
    ``collapse`` folds each result within that cosine of a better one into it; ``match_words`` fuses the
    ranking with the query's words in file names, URL paths and camera; ``order`` sorts by relevance or
    date (:mod:`search_app.search.engine`). All are kept here so the UI's paging signature and the result
    cache's key change with them like with any other filter.
    """

    domains: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    min_width: int = 0
    min_height: int = 0
    min_score: float | None = None
    collapse: float | None = None
    match_words: bool = False
    date_from: date | None = None
    date_to: date | None = None
    order: Order = "relevance"
    folder: str | None = None  # a folder of the photo library (PHOTOS_DIR): its photos and its subfolders'

    def point_filter(self, exclude_ids: Sequence[str] = ()) -> PointFilter:
        return PointFilter(
            domains=self.domains,
            content_types=self.content_types,
            min_width=self.min_width,
            min_height=self.min_height,
            date_from=self.date_from,
            date_to=self.date_to,
            exclude_ids=tuple(exclude_ids),
            folder=self.folder,
        )


def folder_filter(text: str | None) -> str | None:
    """A folder as a person types it (``2024/summer/``, ``/2024``) as the filter takes it; empty: none."""
    folder = "/".join(part for part in (text or "").strip().split("/") if part)
    return folder or None


@dataclass(frozen=True)
class Query:
    """What a person asked for. ``like`` is the sha256 of an indexed image ("more like this")."""

    text: str = ""
    image: bytes | None = None
    like: str | None = None
    filters: Filters = field(default_factory=Filters)

    @property
    def parsed(self) -> ParsedText:
        return parse_text(self.text)

    def is_empty(self) -> bool:
        return not self.parsed.positive and self.image is None and self.like is None

    def is_browse(self) -> bool:
        """No query, but a date order: the index by date."""
        return self.is_empty() and self.filters.order != "relevance"


def _public_schema(schema: dict[str, Any]) -> None:
    """The JSON schema of what a hit serialises to: the store's own fields left out."""
    for name in INTERNAL_FIELDS:
        schema.get("properties", {}).pop(name, None)
        if name in schema.get("required", []):
            schema["required"].remove(name)


class Hit(ImagePoint):
    """One result: its rank and score beside every payload field of its point (:class:`ImagePoint`).

    ``score`` is the cosine, the fused rank score with word matching, or 0.0 when browsing by date.
    """

    model_config = ConfigDict(json_schema_extra=_public_schema)

    rank: int
    score: float
    id: str
    similar: list[str] = Field(default_factory=list)  # sha256 of near-duplicates folded into this result

    @classmethod
    def from_found(cls, found: Found, rank: int) -> Hit:
        return cls(**dict(found.point), rank=rank, score=found.score, id=found.id)

    @model_serializer(mode="wrap")
    def _without_internal_fields(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo):
        data = handler(self)
        if isinstance(data, dict) and not (info.context or {}).get("every_field"):
            for name in INTERNAL_FIELDS:
                data.pop(name, None)
        return data

    def to_json(self) -> dict[str, Any]:
        """Every payload field but the store's own (``INTERNAL_FIELDS``), with rank, score, id and similar."""
        return self.model_dump(mode="json")
