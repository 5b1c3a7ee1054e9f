"""One place for the point: a payload field set in ImagePoint reaches every reader, and no reader builds
or reads a payload by hand.

Two checks. The static one reads the sources of the app, the indexer, the benchmarks and the test helpers:
none imports qdrant_client or touches a raw payload (``.payload``, ``PointStruct``); only the store seam in
``dyimages_common`` does. The behavioural one writes a point with every field of the model set (EXIF
included) through the seam, then reads it back through each reader: the app's search hit, the CLI's
``--json``, reindex's messages and the benchmark's fill. The field lists come from ``ImagePoint`` itself, so
a field added there is checked here without editing this test; a reader that copies fields by hand fails.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.settings import load_settings
from dyimages_common.store.points import INTERNAL_FIELDS, ImagePoint
from search_app.ops.reindex import CARRIED, build_messages
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import ServiceEmbedder
from search_app.settings import AppSettings
from testkit.app_driver import search_json
from testkit.index_points import add_point
from testkit.indexed_library import Library, PictureSpec, make_picture

ROOT = Path(__file__).resolve().parents[2]
READERS = [ROOT / "app/src", ROOT / "indexer/src", ROOT / "bench", ROOT / "testkit"]
# Test helpers that stand for what is not a reader: the Qdrant server (its REST stand-in, built on qdrant-client)
# and another tool writing past the point model (raw payloads, on purpose).
NOT_READERS = {ROOT / "testkit/src/testkit/qdrant_rest.py", ROOT / "testkit/src/testkit/stores.py"}
RAW = re.compile(r"^\s*(from|import) qdrant_client\b|\.payload\b|PointStruct|payload\.get\(|payload\[", re.MULTILINE)
EXIF = {"taken_at": datetime(2019, 7, 14, 9, 30, tzinfo=UTC), "camera": "Canon EOS 5D", "orientation": 6}


@pytest.mark.unit
def test_no_reader_outside_the_seam_touches_qdrant_or_a_raw_payload() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}: {match.group(0).strip()}"
        for folder in READERS
        for path in sorted(folder.rglob("*.py"))
        if path not in NOT_READERS
        for match in RAW.finditer(path.read_text())
    ]
    assert offenders == []


def _every_field(point: ImagePoint) -> dict:
    """The point's payload, every field of the model present and set (so a dropped one shows)."""
    payload = point.to_payload()
    assert set(payload) == set(ImagePoint.model_fields) | set(ImagePoint.model_computed_fields)
    unset = [name for name, value in payload.items() if value in (None, "", [], 0)]
    assert unset == [], "the written point leaves fields unset: set them here so each reader is checked"
    return payload


@pytest.mark.integration
def test_every_field_of_the_point_reaches_search_the_cli_and_reindex(own_library: Library, tmp_path: Path) -> None:
    picture = make_picture(own_library.images_dir, PictureSpec(7301, ("https://a.example/photos/IMG_7301.jpg",)))
    with EmbeddingClient(own_library.env["EMBEDDING_SERVICE_URL"]) as embedding:
        info = embedding.info()
        vector = embedding.embed_image_bytes(picture.data)
        index = own_library.open_index()
        try:
            add_point(
                index,
                picture.sha256,
                vector,
                picture.urls[0],
                model=info.model,
                size=(64, 48),
                library_paths=("2019/07/IMG_7301.jpg",),  # found in the photo folder too
                **EXIF,
            )  # a collection without weights recorded accepts this service's queries
            stored = index.point(picture.sha256)
            assert stored is not None
            written = _every_field(stored)
            (hit,) = search(index, ServiceEmbedder(embedding), Query(image=picture.data), limit=1)
            settings = load_settings(AppSettings)  # the library's environment
            messages = build_messages(settings, picture.path, index)
        finally:
            index.close()

    shown = {key: value for key, value in written.items() if key not in INTERNAL_FIELDS}
    assert {key: value for key, value in hit.to_json().items() if key in written} == shown  # the app's hit
    query_file = tmp_path / "query.jpg"
    query_file.write_bytes(picture.data)
    (result,) = search_json("", "--image", str(query_file), "--top-k", "1")["results"]
    assert {key: value for key, value in result.items() if key in written} == shown  # the CLI's --json

    (message,) = messages  # reindex: what the file says, the rest carried from the point
    assert message.url == picture.urls[0]
    for name in CARRIED - {"path", "content_type", "width", "height", "bytes"}:
        assert getattr(message, name) == getattr(stored, name), name
    assert set(EXIF) <= CARRIED, "a field both models share is carried by reindex"


@pytest.mark.unit
def test_the_benchmark_fills_its_index_with_every_field_of_the_model(tmp_path: Path) -> None:
    from bench.points import fill, open_index

    index, _ = open_index(tmp_path / "qdrant", "ViT-B-32")
    try:
        fill(index, None, 0, 3, "ViT-B-32")
        points = [point for _, point in index.points()]
    finally:
        index.close()
    assert len(points) == 3
    for point in points:
        payload = point.to_payload()
        assert set(payload) == set(ImagePoint.model_fields) | set(ImagePoint.model_computed_fields)
        assert payload["revision"], "the benchmark's points carry the write's revision like the indexer's"
        assert ImagePoint.from_payload(payload) == point


@pytest.mark.unit
def test_messages_share_their_optional_facts_with_the_point() -> None:
    """The facts a message may carry are point fields too (else the indexer would drop them)."""
    optional = {name for name, field in ImageDownloaded.model_fields.items() if not field.is_required()}
    assert optional - {"schema_version"} <= set(ImagePoint.model_fields)
