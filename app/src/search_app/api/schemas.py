"""What the API takes and gives: query parameters with their bounds, and the response bodies.

The bounds are constants, not settings, so the committed OpenAPI document (``docs/openapi.json``) is the
contract everywhere; a request past one is refused (422) with the field and the bound named. A hit is the
search's own :class:`~search_app.search.model.Hit`, the same model ``dyimages search --json`` prints.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dyimages_common.store.types import Order
from search_app.search.collapse import NEAR_DUPLICATE_COSINE
from search_app.search.model import FORMAT_NAMES, SCHEMA_VERSION, Filters, Hit, folder_filter

MAX_TEXT_CHARS = 500
MAX_LIMIT = 100
MAX_OFFSET = 1000
MAX_FILTER_VALUES = 20
MAX_SIDE = 100_000
THUMBNAIL_PX = (32, 1024)
FormatName = Literal[tuple(FORMAT_NAMES)]  # type: ignore[valid-type]
ISO_DAY = re.compile(r"\d{4}-\d{2}-\d{2}", re.ASCII)


class SearchParams(BaseModel):
    """A search's options, the same as the UI's and ``dyimages search``'s."""

    model_config = ConfigDict(extra="forbid")

    q: str = Field("", max_length=MAX_TEXT_CHARS, description='What to find; "-word" or -"a phrase" excludes.')
    limit: int = Field(12, ge=1, le=MAX_LIMIT, description="Results on this page.")
    offset: int = Field(0, ge=0, le=MAX_OFFSET, description="Results skipped before this page.")
    min_score: float | None = Field(None, ge=-1.0, le=1.0, description="No result whose cosine is below this.")
    words: bool = Field(False, description="Also rank by the query's words in file names, URL paths and camera.")
    collapse: bool = Field(False, description="Fold near-duplicates into the better result (its `similar`).")
    date_from: date | None = Field(None, description="Only photos dated this UTC day or later.")
    date_to: date | None = Field(None, description="Only photos dated this UTC day or earlier.")
    order: Order = Field("relevance", description="relevance, or newest/oldest by the photo's date.")
    domain: list[str] = Field([], max_length=MAX_FILTER_VALUES, description="Only these source domains.")
    format: list[FormatName] = Field([], max_length=MAX_FILTER_VALUES, description="Only these formats.")
    min_width: int = Field(0, ge=0, le=MAX_SIDE)
    min_height: int = Field(0, ge=0, le=MAX_SIDE)
    folder: str = Field(
        "", max_length=MAX_TEXT_CHARS, description="Only photos of the photo folder in this folder or below it."
    )

    @field_validator("date_from", "date_to", mode="before")
    @classmethod
    def _a_calendar_day(cls, value: object) -> object:
        """A day as the schema says, YYYY-MM-DD: pydantic alone would read a number as a Unix time."""
        if isinstance(value, str) and not ISO_DAY.fullmatch(value):
            raise ValueError("a day is written YYYY-MM-DD")
        return value

    @model_validator(mode="after")
    def _dates_in_order(self) -> Self:
        if self.date_from and self.date_to and self.date_from > self.date_to:
            raise ValueError(f"date_from {self.date_from} is after date_to {self.date_to}")
        return self

    def filters(self) -> Filters:
        return Filters(
            domains=tuple(d.strip().lower().removeprefix("www.") for d in self.domain if d.strip()),
            content_types=tuple(FORMAT_NAMES[name] for name in self.format),
            min_width=self.min_width,
            min_height=self.min_height,
            min_score=self.min_score,
            collapse=NEAR_DUPLICATE_COSINE if self.collapse else None,
            match_words=self.words,
            date_from=self.date_from,
            date_to=self.date_to,
            order=self.order,
            folder=folder_filter(self.folder),
        )


class QueryEcho(BaseModel):
    """The query as the search understood it."""

    text: str
    positive: str
    negatives: list[str]
    image: bool = Field(description="An uploaded image was part of the query.")
    like: str | None = Field(description="The sha256 of the indexed image the results are similar to.")
    limit: int
    offset: int
    filters: SearchParams


class SearchPage(BaseModel):
    """One page of results, best first (or by date)."""

    schema_version: Literal[SCHEMA_VERSION] = SCHEMA_VERSION  # type: ignore[valid-type]
    collection: str
    query: QueryEcho
    results: list[Hit]


class Problem(BaseModel):
    """Why a request was refused or could not be answered, in a sentence."""

    detail: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"
