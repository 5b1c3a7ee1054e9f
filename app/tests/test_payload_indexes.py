"""Every payload field the app's search filters on has a payload index of a fitting kind.

Embedded mode filters by brute force whatever the indexes, so only this check keeps a new filter
from running as a full scan on the Qdrant server.
"""

from __future__ import annotations

import numpy as np
import pytest
from qdrant_client import models

from dyimages_common.qdrant import PAYLOAD_INDEXES
from search_app.search import Filters

pytestmark = pytest.mark.unit

KIND = {
    models.MatchAny: models.PayloadSchemaType.KEYWORD,
    models.MatchText: models.PayloadSchemaType.TEXT,
}


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


def test_every_filtered_field_is_indexed_with_its_kind() -> None:
    every_filter = Filters(domains=("example.org",), content_types=("image/png",), min_width=10, min_height=10)
    used = conditions(every_filter.to_qdrant())
    assert {c.key for c in used} == {"domains", "content_type", "width", "height"}
    for condition in used:
        assert condition.key in PAYLOAD_INDEXES, f"{condition.key} is filtered on without an index"
        if condition.range is not None:
            assert PAYLOAD_INDEXES[condition.key] == models.PayloadSchemaType.INTEGER
        else:
            assert PAYLOAD_INDEXES[condition.key] == KIND[type(condition.match)]


def test_word_matching_has_a_text_index(tmp_path) -> None:
    # The word-matching search's prefetch filters, taken from the real query it sends.
    from qdrant_client import QdrantClient

    from dyimages_common.qdrant import ensure_collection
    from search_app.search import _ranking

    client = QdrantClient(path=str(tmp_path / "q"))
    try:
        ensure_collection(client, "images", dim=4, model="m")
        sent: list[models.Prefetch] = []
        real = client.query_points

        def recording(*args, **kwargs):
            sent.extend(kwargs.get("prefetch") or [])
            return real(*args, **kwargs)

        client.query_points = recording  # type: ignore[method-assign]
        vector = np.ones(4, dtype=np.float32)
        _ranking(client, "images", vector, Filters(match_words=True), (), ["bicycle"], limit=5, offset=0)
    finally:
        client.close()
    text_conditions = [c for p in sent for c in conditions(p.filter) if isinstance(c.match, models.MatchText)]
    assert text_conditions, "the word-matching query sent no full-text condition"
    for condition in text_conditions:
        assert PAYLOAD_INDEXES.get(condition.key) == models.PayloadSchemaType.TEXT
