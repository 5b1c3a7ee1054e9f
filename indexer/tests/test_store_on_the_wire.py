"""The indexer's conditional writes as a Qdrant *server* receives them: what goes over HTTP.

In embedded mode (indexer/tests/test_store.py) qdrant-client hands ``update_mode`` and
``update_filter`` to its local engine, never to HTTP. Here the real client, built by our own
``connect_qdrant`` for a server, runs the real ``write_images`` through the server adapter against
``RecordingEndpoint`` — a recording stand-in for Qdrant's REST API (no Qdrant server binary can be had
here), scripted by :class:`EchoPoints` to answer a retrieve with what the last upsert wrote. The test reads the
upserts' JSON bodies: the condition must be on the wire in the shape of Qdrant's REST API
(``PUT /collections/{name}/points`` with ``update_mode`` and ``update_filter``). Whether the server
applies it atomically is not checked here (docs/architecture.md, "Server-only features").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.points import point_id
from dyimages_common.store.qdrant.connect import connect_qdrant
from dyimages_common.store.qdrant.engine import QdrantEngine
from dyimages_common.store.types import ImageVector
from dyimages_common.store.writes import write_images
from testkit.images import jpeg
from testkit.messages import message_for
from testkit.recording_http import Recorded, RecordingEndpoint

pytestmark = pytest.mark.unit

KEY = "dummy-qdrant-key"
POINTS_PATH = "/collections/images/points"


class EchoPoints:
    """Answers for the recording stand-in: an upsert is acknowledged and kept; a retrieve returns it."""

    def __init__(self) -> None:
        self.points: dict[str, dict[str, Any]] = {}

    def __call__(self, request: Recorded) -> dict[str, Any] | None:
        if not request.path.startswith(POINTS_PATH) or not isinstance(request.body, dict):
            return None
        if request.method == "PUT":
            for point in request.body["points"]:
                self.points[point["id"]] = point
            return {"result": {"operation_id": len(self.points), "status": "completed"}, "status": "ok", "time": 0}
        if request.method == "POST" and "ids" in request.body:
            found = [self.points[i] for i in request.body["ids"] if i in self.points]
            return {"result": [{"id": p["id"], "payload": p["payload"]} for p in found], "status": "ok", "time": 0}
        return None


def test_conditional_writes_go_over_http_as_qdrants_rest_api_has_them() -> None:
    data = jpeg(11)
    first, second = message_for(data, "https://a.example/11.jpg"), message_for(data, "https://b.example/11.jpg")
    vector = np.ones(8, dtype=np.float32) / np.sqrt(8)
    with RecordingEndpoint(answer=EchoPoints()) as endpoint:
        settings = load_settings(
            QdrantSettings, qdrant_host="127.0.0.1", qdrant_port=endpoint.port, qdrant_api_key=KEY, qdrant_path=None
        )
        engine = QdrantEngine(connect_qdrant(settings))
        try:
            assert write_images(engine, "images", [ImageVector(first.sha256, vector, [first])], model="m") == 1
            assert write_images(engine, "images", [ImageVector(first.sha256, vector, [second])], model="m") == 1
        finally:
            engine.close()
        endpoint.wait_for("/")
    assert {(r.scheme, r.headers.get("api-key")) for r in endpoint.requests} == {("http", KEY)}
    inserted, updated = [r for r in endpoint.requests if r.method == "PUT"]
    assert inserted.path == f"{POINTS_PATH}?wait=true"
    assert inserted.body["update_mode"] == "insert_only"
    assert inserted.body.get("update_filter") is None
    (point,) = inserted.body["points"]
    assert point["id"] == point_id(first.sha256)
    assert point["payload"]["urls"] == ["https://a.example/11.jpg"]

    assert updated.path == f"{POINTS_PATH}?wait=true"
    assert updated.body["update_mode"] == "update_only"
    revision_read = point["payload"]["revision"]
    condition = updated.body["update_filter"]
    # The condition is the revision read for this very point (one call per revision read).
    assert condition["must"] == [{"key": "revision", "match": {"value": revision_read}}]
    assert updated.body["points"][0]["payload"]["urls"] == ["https://a.example/11.jpg", "https://b.example/11.jpg"]
