"""What a search asks of the index, store-neutral (:class:`PointFilter`, :class:`Found`), and its
translation into Qdrant's query API (the only Qdrant-specific part, used by the store seam).

Dates are whole days in UTC: ``date_from``/``date_to`` are inclusive bounds on the payload's ``date``
(the photo's EXIF date, else its download time; see :class:`dyimages_common.points.ImagePoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal

import numpy as np
from qdrant_client import models

from dyimages_common.points import ImagePoint

Order = Literal["relevance", "newest", "oldest"]
FUSION_DEPTH = 1000  # each ranking fused (or re-ordered by date) holds this many: every page sees the same list


@dataclass(frozen=True)
class PointFilter:
    """Payload conditions; empty means no condition."""

    domains: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    min_width: int = 0
    min_height: int = 0
    date_from: date | None = None
    date_to: date | None = None
    exclude_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Found:
    """One point the index answered with: its score (cosine, fused rank score, or 0.0 when browsing)."""

    id: str
    score: float
    point: ImagePoint
    vector: np.ndarray | None = None


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def to_filter(where: PointFilter, *, extra: Sequence[models.Condition] = ()) -> models.Filter | None:
    must: list[models.Condition] = list(extra)
    if where.domains:
        must.append(models.FieldCondition(key="domains", match=models.MatchAny(any=list(where.domains))))
    if where.content_types:
        must.append(models.FieldCondition(key="content_type", match=models.MatchAny(any=list(where.content_types))))
    if where.min_width > 0:
        must.append(models.FieldCondition(key="width", range=models.Range(gte=where.min_width)))
    if where.min_height > 0:
        must.append(models.FieldCondition(key="height", range=models.Range(gte=where.min_height)))
    if where.date_from is not None or where.date_to is not None:
        must.append(
            models.FieldCondition(
                key="date",
                range=models.DatetimeRange(
                    gte=_day_start(where.date_from) if where.date_from else None,
                    lt=_day_start(where.date_to + timedelta(days=1)) if where.date_to else None,
                ),
            )
        )
    must_not: list[models.Condition] = (
        [models.HasIdCondition(has_id=list(where.exclude_ids))] if where.exclude_ids else []
    )
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


def word_prefetches(
    vector: np.ndarray, where: PointFilter, min_score: float | None, words: Sequence[str], depth: int
) -> list[models.Prefetch]:
    """The vector ranking, and per word the vector ranking of the points whose ``words`` (file names, URL
    paths, camera) contain it: fused by reciprocal rank in one ``query_points``."""
    return [
        models.Prefetch(query=vector.tolist(), filter=to_filter(where), score_threshold=min_score, limit=depth),
        *(
            models.Prefetch(
                query=vector.tolist(),
                filter=to_filter(where, extra=[models.FieldCondition(key="words", match=models.MatchText(text=word))]),
                limit=depth,
            )
            for word in words
        ),
    ]


def by_date(found: list[Found], order: Order) -> list[Found]:
    """``found`` re-ordered by the point's date (newest or oldest first; undated last), else as it is."""
    if order == "relevance":
        return found
    dated = [f for f in found if f.point.date is not None]
    undated = [f for f in found if f.point.date is None]
    dated.sort(key=lambda f: f.point.date, reverse=order == "newest")  # type: ignore[arg-type, return-value]
    return dated + undated


def date_order(order: Order) -> models.OrderBy:
    direction = models.Direction.DESC if order == "newest" else models.Direction.ASC
    return models.OrderBy(key="date", direction=direction)
