"""The store's filters, word matching, date order and payload index kinds in qdrant-client's models."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from qdrant_client import models

from dyimages_common.store.points import REVISION_FIELD, IndexKind, payload_indexes
from dyimages_common.store.types import Order, PointFilter

_SCHEMAS = {
    IndexKind.KEYWORD: models.PayloadSchemaType.KEYWORD,
    IndexKind.INTEGER: models.PayloadSchemaType.INTEGER,
    IndexKind.DATETIME: models.PayloadSchemaType.DATETIME,
    IndexKind.TEXT: models.PayloadSchemaType.TEXT,
}
# Payload fields the search filters, orders or word-matches on get an index (a no-op in qdrant-client's
# embedded mode, which is brute force): derived from the point model's marks, never listed by hand.
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    name: _SCHEMAS[kind] for name, kind in payload_indexes().items()
}


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
    start, end = where.day_range()
    if start is not None or end is not None:
        must.append(models.FieldCondition(key="date", range=models.DatetimeRange(gte=start, lt=end)))
    if where.folder:
        must.append(models.FieldCondition(key="folders", match=models.MatchValue(value=where.folder)))
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


def date_order(order: Order) -> models.OrderBy:
    direction = models.Direction.DESC if order == "newest" else models.Direction.ASC
    return models.OrderBy(key="date", direction=direction)


def revision_filter(expected: str | None, ids: Sequence[str] = ()) -> models.Filter:
    """Matches a point whose revision is still the one read, or still none (a point another tool wrote)."""
    must: list[models.Condition] = [models.HasIdCondition(has_id=list(ids))] if ids else []
    if expected:
        must.append(models.FieldCondition(key=REVISION_FIELD, match=models.MatchValue(value=expected)))
    else:
        must.append(models.IsEmptyCondition(is_empty=models.PayloadField(key=REVISION_FIELD)))
    return models.Filter(must=must)
