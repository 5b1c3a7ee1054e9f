"""The search itself: a :class:`~search_app.search.model.Query` to a page of hits through the store seam.

Plain functions over an :class:`~dyimages_common.store.index.ImageStore` and an embedder, shared by the
Streamlit UI, the CLI and the query benchmark. How a query becomes a vector is
:mod:`search_app.search.vectors`; near-duplicate folding is :mod:`search_app.search.collapse`.

Order: ``relevance`` (default) ranks by the query vector. ``newest``/``oldest`` order by the payload's
``date`` (EXIF date, else download time): without a query (browsing) over the whole filtered index
through the ``date`` payload index; with a query, the results above the minimum score among the best
:data:`~dyimages_common.store.types.FUSION_DEPTH` are re-ordered by date (so set a minimum score to
say what counts as a match).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from dyimages_common.store.points import point_id
from dyimages_common.store.protocol import ImageStore
from search_app.search.collapse import collapse_near_duplicates
from search_app.search.model import Filters, Hit, Query
from search_app.search.vectors import (
    Embedder,
    QueryError,
    answered_by,
    check_query_model,
    combine,
    query_words,
    stored_vector,
)

if TYPE_CHECKING:
    from search_app.search.cache import QueryCache


NO_FILTERS = Filters()


def search_vector(
    index: ImageStore,
    vector: np.ndarray,
    *,
    filters: Filters = NO_FILTERS,
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


def browse(index: ImageStore, filters: Filters, *, limit: int = 10, offset: int = 0) -> list[Hit]:
    """The filtered index by date, no query (``filters.order`` newest or oldest); score 0.0."""
    found = index.browse(filters.point_filter(), order=filters.order, limit=limit, offset=offset)
    return [Hit.from_found(one, rank=offset + i + 1) for i, one in enumerate(found)]


def search(
    index: ImageStore,
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
    image was indexed (:mod:`search_app.search.cache`); vectors are cached by the embedder.
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
    made_by = answered_by(embedder)  # None when nothing was embedded ("more like this" alone)
    check_query_model(index, made_by)
    exclude = [point_id(query.like)] if query.like else []
    words = query_words(parsed.positive) if query.filters.match_words else []

    def run() -> list[Hit]:
        return search_vector(
            index, vector, filters=query.filters, limit=limit, offset=offset, exclude_ids=exclude, words=words
        )

    if cache is None:
        return run()
    return cache.results(
        index,
        vector,
        filters=query.filters,
        limit=limit,
        offset=offset,
        exclude_ids=exclude,
        compute=run,
        words=words,
        made_by=made_by,
    )


def index_size(index: ImageStore) -> int | None:
    """Points in the serving collection, or None when there is none."""
    return index.count()


def facet_values(index: ImageStore, key: str, limit: int = 50) -> list[str]:
    """Distinct values of a keyword payload field (for the filter pickers), most frequent first."""
    return index.facets(key, limit)
