"""The store's filters, word matching, date order and payload index kinds in Qdrant Edge's types."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import qdrant_edge as edge

from dyimages_common.store.points import REVISION_FIELD, IndexKind, payload_indexes
from dyimages_common.store.types import Order, PointFilter, Row

_SCHEMAS = {
    IndexKind.KEYWORD: edge.PayloadSchemaType.Keyword,
    IndexKind.INTEGER: edge.PayloadSchemaType.Integer,
    IndexKind.DATETIME: edge.PayloadSchemaType.Datetime,
    IndexKind.TEXT: edge.PayloadSchemaType.Text,
}
# Derived from the point model's marks, as the Qdrant engine's are: one place to add a field.
PAYLOAD_INDEXES: dict[str, edge.PayloadSchemaType] = {name: _SCHEMAS[kind] for name, kind in payload_indexes().items()}

Condition = edge.FieldCondition | edge.HasIdCondition | edge.IsEmptyCondition | edge.Filter


def to_filter(where: PointFilter, *, extra: Sequence[Condition] = ()) -> edge.Filter | None:
    must: list[Condition] = list(extra)
    if where.domains:
        must.append(edge.FieldCondition(key="domains", match=edge.MatchAny(any=list(where.domains))))
    if where.content_types:
        must.append(edge.FieldCondition(key="content_type", match=edge.MatchAny(any=list(where.content_types))))
    if where.min_width > 0:
        must.append(edge.FieldCondition(key="width", range=edge.RangeFloat(gte=float(where.min_width))))
    if where.min_height > 0:
        must.append(edge.FieldCondition(key="height", range=edge.RangeFloat(gte=float(where.min_height))))
    start, end = where.day_range()
    if start is not None or end is not None:
        bounds = edge.RangeDateTime(gte=start.isoformat() if start else None, lt=end.isoformat() if end else None)
        must.append(edge.FieldCondition(key="date", range=bounds))
    if where.folder:
        must.append(edge.FieldCondition(key="folders", match=edge.MatchValue(where.folder)))
    must_not: list[Condition] = [edge.HasIdCondition(set(where.exclude_ids))] if where.exclude_ids else []
    if not must and not must_not:
        return None
    return edge.Filter(must=must or None, must_not=must_not or None)


def nearest(vector: Sequence[float]) -> edge.Query:
    return edge.Query.Nearest(list(vector))


def word_prefetches(
    vector: Sequence[float], where: PointFilter, min_score: float | None, words: Sequence[str], depth: int
) -> list[edge.Prefetch]:
    """The vector ranking, and per word the vector ranking of the points whose ``words`` contain it."""
    return [
        edge.Prefetch(limit=depth, query=nearest(vector), filter=to_filter(where), score_threshold=min_score),
        *(
            edge.Prefetch(
                limit=depth,
                query=nearest(vector),
                filter=to_filter(where, extra=[edge.FieldCondition(key="words", match=edge.MatchText(word))]),
            )
            for word in words
        ),
    ]


RRF = edge.Fusion.Rrf(k=2)  # Qdrant's default constant, as the server and qdrant-client use


def date_order(order: Order) -> edge.OrderBy:
    return edge.OrderBy("date", direction=edge.Direction.Desc if order == "newest" else edge.Direction.Asc)


def revision_filter(expected: str | None, ids: Sequence[str] = ()) -> edge.Filter:
    """Matches a point whose revision is still the one read, or still none (a point another tool wrote)."""
    must: list[Condition] = [edge.HasIdCondition(set(ids))] if ids else []
    if expected:
        must.append(edge.FieldCondition(key=REVISION_FIELD, match=edge.MatchValue(expected)))
    else:
        must.append(edge.IsEmptyCondition(REVISION_FIELD))
    return edge.Filter(must=must)


def _vector(value: Any) -> np.ndarray | None:
    if value is None:
        return None
    if isinstance(value, dict):  # the unnamed vector, keyed by ""
        value = value.get("")
    return np.asarray(value, dtype=np.float32)


def as_row(record: Any, score: float = 0.0) -> Row:
    """A record or scored point of Edge as the store's Row (id as a string)."""
    return Row(id=str(record.id), payload=dict(record.payload or {}), vector=_vector(record.vector), score=score)


def as_point(row: Row) -> edge.Point:
    return edge.Point(row.id, row.vector.tolist() if row.vector is not None else [], row.payload)
