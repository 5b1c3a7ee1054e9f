"""The committed OpenAPI document (docs/openapi.json) is the one the code generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from search_app.api import openapi

pytestmark = pytest.mark.unit

COMMITTED = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"


def test_the_committed_document_is_the_generated_one() -> None:
    assert COMMITTED.read_text() == openapi.text(), (
        "the API changed: run `python -m search_app.api.openapi docs/openapi.json` and commit the file"
    )


def test_the_hit_schema_is_the_search_s_without_the_store_s_fields() -> None:
    hit = openapi.document()["components"]["schemas"]["Hit"]
    assert {"sha256", "rank", "score", "url", "date", "similar"} <= set(hit["properties"])
    assert not {"revision", "words"} & set(hit["properties"])
