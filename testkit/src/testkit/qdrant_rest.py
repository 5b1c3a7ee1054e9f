"""A stand-in for the Qdrant server's REST API, for the store contract suite: NOT a Qdrant server.

No Qdrant server binary can be had on the test machines. So that the server adapter
(:mod:`dyimages_common.store.qdrant.engine` with a client built for a server) runs the same contract
cases as the embedded engines, over real HTTP, :class:`QdrantRestStandIn` answers the REST calls that
adapter makes (aliases, collections, payload indexes, retrieve, scroll, count, facet, query, upsert with
``update_mode``/``update_filter``, delete) by parsing each request body with qdrant-client's own REST
models and running it on qdrant-client's embedded engine in memory; every exchange is recorded
(:attr:`RecordingEndpoint.requests`). What it proves is that the adapter's requests are well-formed for
Qdrant's REST API and that their answers are read back right; how a real server applies them (HNSW,
payload indexes, atomicity across processes) stays unverified (docs/architecture.md).
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import TypeAdapter
from qdrant_client import QdrantClient
from qdrant_client.http import models

from testkit.recording_http import Recorded, RecordingEndpoint

_COLLECTION = re.compile(r"^/collections/(?P<name>[^/?]+)(?P<rest>/[^?]*)?(?:\?.*)?$")
_INSERTS: TypeAdapter[Any] = TypeAdapter(models.PointInsertOperations)
_SELECTOR: TypeAdapter[Any] = TypeAdapter(models.PointsSelector)


def _ok(result: Any) -> dict[str, Any]:
    if hasattr(result, "model_dump"):
        result = result.model_dump(mode="json", exclude_none=True)
    elif isinstance(result, list):
        result = [r.model_dump(mode="json", exclude_none=True) if hasattr(r, "model_dump") else r for r in result]
    return {"result": result, "status": "ok", "time": 0.0}


class QdrantRestStandIn(RecordingEndpoint):
    """Plain HTTP on 127.0.0.1; each call runs on one in-memory qdrant-client embedded engine."""

    def __init__(self) -> None:
        self.engine = QdrantClient(":memory:")
        super().__init__(answer=self._answer)

    def __exit__(self, *exc: object) -> None:
        super().__exit__(*exc)
        self.engine.close()

    def _answer(self, request: Recorded) -> dict[str, Any] | tuple[int, dict[str, Any]] | None:
        try:
            return self._route(request)
        except (ValueError, KeyError) as exc:
            if "not found" in str(exc).lower() or isinstance(exc, KeyError):
                return 404, {"status": {"error": f"Not found: {exc}"}, "time": 0.0}
            return 400, {"status": {"error": f"Bad request: {exc}"}, "time": 0.0}

    def _route(self, request: Recorded) -> dict[str, Any] | None:
        q, body, method = self.engine, request.body or {}, request.method
        path = request.path.split("?")[0]
        if path == "/aliases" and method == "GET":
            return _ok(q.get_aliases())
        if path == "/collections/aliases" and method == "POST":
            operations = models.ChangeAliasesOperation.model_validate(body)
            return _ok(q.update_collection_aliases(change_aliases_operations=operations.actions))
        match = _COLLECTION.match(request.path)
        if match is None:
            return None  # the root: the canned version answer
        name, rest = match["name"], match["rest"] or ""
        if rest == "/exists":
            return _ok({"exists": q.collection_exists(name)})
        if rest == "" and method == "GET":
            return _ok(q.get_collection(name))
        if rest == "" and method == "PUT":
            create = models.CreateCollection.model_validate(body)
            if q.collection_exists(name):
                raise ValueError(f"collection {name} already exists")
            return _ok(q.create_collection(name, vectors_config=create.vectors, metadata=create.metadata))
        if rest == "" and method == "DELETE":
            return _ok(q.delete_collection(name))
        if rest == "/index" and method == "PUT":
            field = models.CreateFieldIndex.model_validate(body)
            return _ok(q.create_payload_index(name, field.field_name, field_schema=field.field_schema))
        if rest == "/points/count":
            count = models.CountRequest.model_validate(body)
            return _ok(q.count(name, count_filter=count.filter, exact=bool(count.exact)))
        if rest == "/facet":
            facet = models.FacetRequest.model_validate(body)
            return _ok(
                q.facet(
                    name, key=facet.key, facet_filter=facet.filter, limit=facet.limit or 10, exact=bool(facet.exact)
                )
            )
        if rest == "/points" and method == "POST":
            asked = models.PointRequest.model_validate(body)
            return _ok(q.retrieve(name, asked.ids, with_payload=asked.with_payload, with_vectors=asked.with_vector))
        if rest == "/points/scroll":
            scroll = models.ScrollRequest.model_validate(body)
            records, following = q.scroll(
                name,
                scroll_filter=scroll.filter,
                limit=scroll.limit or 10,
                offset=scroll.offset,
                order_by=scroll.order_by,
                with_payload=scroll.with_payload if scroll.with_payload is not None else True,
                with_vectors=scroll.with_vector or False,
            )
            return _ok({"points": [r.model_dump(mode="json") for r in records], "next_page_offset": following})
        if rest == "/points/query":
            query = models.QueryRequest.model_validate(body)
            return _ok(
                q.query_points(
                    name,
                    query=query.query,
                    prefetch=query.prefetch,
                    query_filter=query.filter,
                    score_threshold=query.score_threshold,
                    limit=query.limit or 10,
                    offset=query.offset,
                    with_payload=query.with_payload if query.with_payload is not None else False,
                    with_vectors=query.with_vector or False,
                )
            )
        if rest == "/points" and method == "PUT":
            insert = _INSERTS.validate_python(body)
            return _ok(
                q.upsert(name, insert.points, update_filter=insert.update_filter, update_mode=insert.update_mode)
            )
        if rest == "/points/delete":
            return _ok(q.delete(name, _SELECTOR.validate_python(body)))
        raise ValueError(f"the stand-in does not answer {method} {request.path}")
