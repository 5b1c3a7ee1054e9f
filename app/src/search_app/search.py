"""Searching the index: filters, the query's vector through the store seam, results and paging.

Plain functions over an :class:`~dyimages_common.image_index.ImageIndex` and an embedder, shared by the
Streamlit UI, the CLI and the query benchmark. How a query becomes a vector is
:mod:`search_app.query_vectors`; near-duplicate folding is :mod:`search_app.collapse`.

Order: ``relevance`` (default) ranks by the query vector. ``newest``/``oldest`` order by the payload's
``date`` (EXIF date, else download time): without a query (browsing) over the whole filtered index
through the ``date`` payload index; with a query, the results above the minimum score among the best
:data:`~dyimages_common.index_query.FUSION_DEPTH` are re-ordered by date (so set a minimum score to
say what counts as a match).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import Field

from dyimages_common.image_index import ImageIndex
from dyimages_common.index_query import Found, Order, PointFilter
from dyimages_common.points import INTERNAL_FIELDS, ImagePoint, point_id
from dyimages_common.store_errors import CollectionMissing, StoreUnavailable
from search_app.collapse import NEAR_DUPLICATE_COSINE, collapse_near_duplicates
from search_app.query_vectors import (
    CachedEmbedder,
    Embedder,
    IndexMismatch,
    ParsedText,
    QueryError,
    ServiceEmbedder,
    answered_by,
    check_query_model,
    combine,
    parse_text,
    query_words,
    stored_vector,
)

if TYPE_CHECKING:
    from search_app.query_cache import QueryCache

__all__ = [
    "NEAR_DUPLICATE_COSINE",
    "QDRANT_ERRORS",
    "CachedEmbedder",
    "CollectionMissing",
    "Embedder",
    "Filters",
    "Hit",
    "IndexMismatch",
    "QdrantUnavailable",
    "Query",
    "QueryError",
    "ServiceEmbedder",
    "facet_values",
    "index_size",
    "parse_text",
    "search",
    "search_vector",
]

QdrantUnavailable = StoreUnavailable  # the store seam classifies every failure; this is the one to catch
QDRANT_ERRORS: tuple[type[BaseException], ...] = (StoreUnavailable,)


@dataclass(frozen=True)
class Filters:
    """Conditions on results; empty means no condition.

    Payload conditions (:meth:`point_filter`): domains, formats, sizes, and ``date_from``/``date_to`` (whole
    UTC days, inclusive, on the payload's ``date``). ``min_score`` is the lowest cosine similarity shown;
    ``collapse`` folds each result within that cosine of a better one into it; ``match_words`` fuses the
    ranking with the query's words in file names, URL paths and camera; ``order`` sorts by relevance or
    date (module docstring). All are kept here so the UI's paging signature and the result cache's key
    change with them like with any other filter.
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


def search_vector(
    index: ImageIndex,
    vector: np.ndarray,
    *,
    filters: Filters = Filters(),
    limit: int = 10,
    offset: int = 0,
    exclude_ids: Sequence[str] = (),
    words: Sequence[str] = (),
) -> list[Hit]:
    """The best ``limit`` points after ``offset`` for ``vector``, best first (or by date, ``filters.order``);
    none scoring below ``filters.min_score`` (so a page past the last strong match is empty, not filled with
    weak ones); with ``filters.collapse``, near-duplicates within the page folded into the better result.
    With ``words`` the order is the reciprocal-rank fusion of the vector ranking and the word rankings, and
    ``score`` is the fused score (each ranking adds 1/(k + rank)), not a cosine; the minimum score then
    applies to the vector ranking."""
    found = index.search(
        vector,
        filters.point_filter(exclude_ids),
        min_score=filters.min_score,
        limit=limit,
        offset=offset,
        words=words,
        order=filters.order,
        with_vectors=filters.collapse is not None,
    )
    hits = [Hit.from_found(one, rank=offset + i + 1) for i, one in enumerate(found)]
    if filters.collapse is None:
        return hits
    vectors = [one.vector for one in found]
    return collapse_near_duplicates(hits, vectors, filters.collapse)  # type: ignore[arg-type]


def browse(index: ImageIndex, filters: Filters, *, limit: int = 10, offset: int = 0) -> list[Hit]:
    """The filtered index by date, no query (``filters.order`` newest or oldest); score 0.0."""
    found = index.browse(filters.point_filter(), order=filters.order, limit=limit, offset=offset)
    return [Hit.from_found(one, rank=offset + i + 1) for i, one in enumerate(found)]


def search(
    index: ImageIndex,
    embedder: Embedder,
    query: Query,
    *,
    limit: int = 10,
    offset: int = 0,
    negative_weight: float = 0.5,
    cache: QueryCache | None = None,
) -> list[Hit]:
    """Run a query: embed its parts, combine them, search with its filters; or browse by date when the
    query is empty and the order is a date order.

    "More like this" leaves the image itself out of its own results. With a ``cache``, the page
    of results comes from Redis when the same vector, filters and page were asked since the last
    image was indexed (:mod:`search_app.query_cache`); vectors are cached by the embedder.
    """
    if query.is_browse():
        return browse(index, query.filters, limit=limit, offset=offset)
    if query.is_empty():
        raise QueryError("nothing to search for: type a text, upload an image or pick an image")
    parsed = query.parsed
    positives = [embedder.text(parsed.positive)] if parsed.positive else []
    if query.image is not None:
        positives.append(embedder.image(query.image))
    if query.like is not None:
        positives.append(stored_vector(index, query.like))
    vector = combine(positives, [embedder.text(text) for text in parsed.negatives], negative_weight)
    if parsed.positive or query.image is not None:
        check_query_model(index, answered_by(embedder))
    exclude = [point_id(query.like)] if query.like else []
    words = query_words(parsed.positive) if query.filters.match_words else []

    def run() -> list[Hit]:
        return search_vector(
            index, vector, filters=query.filters, limit=limit, offset=offset, exclude_ids=exclude, words=words
        )

    if cache is None:
        return run()
    return cache.results(
        index, vector, filters=query.filters, limit=limit, offset=offset, exclude_ids=exclude, compute=run
    )


def index_size(index: ImageIndex) -> int | None:
    """Points in the serving collection, or None when there is none."""
    return index.count()


def facet_values(index: ImageIndex, key: str, limit: int = 50) -> list[str]:
    """Distinct values of a keyword payload field (for the filter pickers), most frequent first."""
    return index.facets(key, limit)
