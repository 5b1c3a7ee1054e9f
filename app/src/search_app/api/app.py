"""The API's FastAPI application: routes, the answers to failures, CORS when configured, upload bounds.

Every failure is an answer with a sentence in ``detail``: a query that cannot be searched 400, a missing
token 401, an unknown image 404, an upload over MAX_IMAGE_BYTES 413 (said before the body is read, from
its Content-Length; a body without one is refused, 411), another model's index 409, a service down 503.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request, status
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from dyimages_common.embeddings.client import EmbeddingRequestError, EmbeddingUnavailable
from dyimages_common.store.errors import StoreUnavailable
from search_app.api.routes import health_router, router
from search_app.api.services import Services
from search_app.api.settings import ApiSettings
from search_app.search.vectors import IndexMismatch, QueryError

TITLE = "DY Images API"
VERSION = "1"
UPLOAD_OVERHEAD = 64 * 1024  # multipart framing and the form's other fields, beyond the image itself
ANSWERS: dict[type[Exception], tuple[int, str]] = {
    QueryError: (status.HTTP_400_BAD_REQUEST, "{exc}"),
    EmbeddingRequestError: (status.HTTP_400_BAD_REQUEST, "the embedding service refused the query: {exc}"),
    IndexMismatch: (status.HTTP_409_CONFLICT, "{exc}"),
    StoreUnavailable: (status.HTTP_503_SERVICE_UNAVAILABLE, "Qdrant is not answering: {exc}"),
    EmbeddingUnavailable: (status.HTTP_503_SERVICE_UNAVAILABLE, "the embedding service is not answering: {exc}"),
}


class BodyBound:
    """Refuses a request body over ``limit`` bytes by its Content-Length before anything reads it (413),
    and a body without a Content-Length (411), so no upload is spooled past the limit."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = dict(scope["headers"])
            length = headers.get(b"content-length")
            refusal = None
            if length is None or not length.isdigit():
                refusal = (status.HTTP_411_LENGTH_REQUIRED, "send the body with a Content-Length")
            elif int(length) > self.limit:
                refusal = (status.HTTP_413_CONTENT_TOO_LARGE, f"the body is larger than {self.limit} bytes")
            if refusal is not None:
                await JSONResponse({"detail": refusal[1]}, status_code=refusal[0])(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _answer(code: int, template: str):
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": template.format(exc=exc)}, status_code=code)

    return handler


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The API; without settings (the OpenAPI document's case) nothing is opened."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        if settings is not None:
            app.state.services.close()

    app = FastAPI(
        title=TITLE,
        version=VERSION,
        summary="Natural-language search over your images: text, an uploaded image, more like this, by date.",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # the interactive pages load scripts from a CDN: docs/openapi.json is the reference
        redoc_url=None,
        lifespan=lifespan,
    )
    app.include_router(health_router)
    app.include_router(router)
    for kind, (code, template) in ANSWERS.items():
        app.add_exception_handler(kind, _answer(code, template))
    if settings is not None:
        app.state.services = Services(settings)
        app.add_middleware(BodyBound, limit=settings.max_image_bytes + UPLOAD_OVERHEAD)
        if origins := settings.cors_origins():
            app.add_middleware(
                CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"], allow_headers=["Authorization"]
            )
    return app
