"""Every payload field the search filters, orders or word-matches on has a payload index of a fitting kind,
and the indexes come from the point model's marks (one place to add a field).

Embedded mode filters by brute force whatever the indexes, so only this check keeps a new filter
from running as a full scan on the Qdrant server.
"""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest
from pydantic import Field
from qdrant_client import models

from dyimages_common.store.points import ImagePoint, IndexKind, payload_indexes
from dyimages_common.store.qdrant.query import PAYLOAD_INDEXES, date_order, to_filter, word_prefetches
from dyimages_common.store.types import PointFilter

pytestmark = pytest.mark.unit


def conditions(payload_filter: models.Filter | None) -> list[models.FieldCondition]:
    if payload_filter is None:
        return []
    found: list[models.FieldCondition] = []
    for condition in [*(payload_filter.must or []), *(payload_filter.must_not or [])]:
        if isinstance(condition, models.FieldCondition):
            found.append(condition)
        elif isinstance(condition, models.Filter):
            found.extend(conditions(condition))
    return found


def kind(condition: models.FieldCondition) -> models.PayloadSchemaType:
    if isinstance(condition.range, models.DatetimeRange):
        return models.PayloadSchemaType.DATETIME
    if condition.range is not None:
        return models.PayloadSchemaType.INTEGER
    if isinstance(condition.match, models.MatchText):
        return models.PayloadSchemaType.TEXT
    return models.PayloadSchemaType.KEYWORD


def test_every_filtered_ordered_or_matched_field_is_indexed_with_its_kind() -> None:
    every = PointFilter(
        domains=("example.org",),
        content_types=("image/png",),
        min_width=10,
        min_height=10,
        date_from=date(2020, 1, 1),
        date_to=date(2020, 12, 31),
        folder="2024/summer",
    )
    used = conditions(to_filter(every))
    used += [c for p in word_prefetches(np.ones(4), every, None, ["bicycle"], 10) for c in conditions(p.filter)]
    assert {c.key for c in used} == {"domains", "content_type", "width", "height", "date", "words", "folders"}
    for condition in used:
        assert PAYLOAD_INDEXES.get(condition.key) == kind(condition), f"{condition.key} is not indexed as it is used"
    assert PAYLOAD_INDEXES[date_order("newest").key] == models.PayloadSchemaType.DATETIME


def test_the_indexes_are_derived_from_the_point_model() -> None:
    class WithAlbum(ImagePoint):
        album: str = Field("", json_schema_extra={"index": "keyword"})

    assert payload_indexes(WithAlbum)["album"] == IndexKind.KEYWORD
    assert "album" not in payload_indexes()
    assert set(PAYLOAD_INDEXES) == set(payload_indexes())
