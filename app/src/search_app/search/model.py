"""The search's types: what a person asks for (:class:`Query` with its :class:`Filters`) and what comes back
(:class:`Hit`), shared by the engine, the query cache, the UI, the CLI's ``--json`` and the HTTP API.

``Hit`` is the one schema of a result everywhere a program reads one (``dyimages search --json``, the API).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from pydantic import Field

from dyimages_common.store.points import INTERNAL_FIELDS, ImagePoint
from dyimages_common.store.types import Found, Order, PointFilter
from search_app.search.vectors import ParsedText, parse_text


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

    def point_filter(self, exclude_ids: Sequence[str] = ()) -> PointFilter:
        return PointFilter(
            domains=self.domains,
            content_types=self.content_types,
            min_width=self.min_width,
            min_height=self.min_height,
            date_from=self.date_from,
            date_to=self.date_to,
            exclude_ids=tuple(exclude_ids),
        )


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


class Hit(ImagePoint):
    """One result: its rank and score beside every payload field of its point (:class:`ImagePoint`).

    ``score`` is the cosine, the fused rank score with word matching, or 0.0 when browsing by date.
    """

    rank: int
    score: float
    id: str
    similar: list[str] = Field(default_factory=list)  # sha256 of near-duplicates folded into this result

    @classmethod
    def from_found(cls, found: Found, rank: int) -> Hit:
        return cls(**dict(found.point), rank=rank, score=found.score, id=found.id)

    def to_json(self) -> dict[str, Any]:
        """Every payload field but the store's own (``INTERNAL_FIELDS``), with rank, score, id and similar."""
        return self.model_dump(mode="json", exclude=set(INTERNAL_FIELDS))
