"""The ``/api/v1`` endpoints: search by text, by an uploaded image, by an indexed image; status; images.

Each runs the app's own search (:func:`search_app.search.engine.search`) with the Redis query cache, in
FastAPI's thread pool (the clients block). Failures become answers in :mod:`search_app.api.app`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, File, HTTPException, Path, Query, UploadFile, status
from fastapi.responses import FileResponse, Response

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.storage import UnsafePathError, resolve_stored_path
from dyimages_common.library.paths import LibraryFileError, read_library_file
from dyimages_common.store.errors import CollectionMissing, StoreUnavailable
from search_app.api.schemas import THUMBNAIL_PX, Health, Problem, QueryEcho, SearchPage, SearchParams
from search_app.api.services import Services, require_token, services
from search_app.ops.status import Status, collect_status
from search_app.search.engine import search
from search_app.search.model import Query as SearchQuery
from search_app.search.thumbnails import Source, ThumbnailError, library_thumbnail, source_of, thumbnail

SHA256 = Annotated[str, Path(pattern=r"^[0-9a-f]{64}$", description="The image's SHA-256 (hex).")]
Params = Annotated[SearchParams, Query()]
Shared = Annotated[Services, Depends(services)]
REFUSED = {
    400: {"model": Problem, "description": "The query cannot be searched (nothing to search for, bad image)."},
    401: {"model": Problem, "description": "API_TOKEN is set and the request does not carry it."},
    409: {"model": Problem, "description": "The index was built by another model: run `dyimages reindex`."},
    503: {"model": Problem, "description": "Qdrant or the embedding service is not answering."},
}
NOT_FOUND = {404: {"model": Problem, "description": "No indexed image has this SHA-256, or its file is gone."}}

router = APIRouter(prefix="/api/v1", dependencies=[Depends(require_token)], responses=REFUSED)
health_router = APIRouter(prefix="/api/v1")


def _page(shared: Services, params: SearchParams, *, image: bytes | None = None, like: str | None = None) -> SearchPage:
    query = SearchQuery(text=params.q, image=image, like=like, filters=params.filters())
    clients = shared.clients()
    try:
        hits = search(
            clients.index,
            shared.embedder(),
            query,
            limit=params.limit,
            offset=params.offset,
            negative_weight=shared.settings.app_negative_weight,
            cache=shared.cache,
        )
    except CollectionMissing:
        hits = []
    parsed = query.parsed
    echo = QueryEcho(
        text=params.q,
        positive=parsed.positive,
        negatives=list(parsed.negatives),
        image=image is not None,
        like=like,
        limit=params.limit,
        offset=params.offset,
        filters=params,
    )
    return SearchPage(collection=shared.settings.qdrant_collection, query=echo, results=hits)


@router.get("/search", response_model=SearchPage, summary="Search by text, or browse by date")
def search_text(shared: Shared, params: Params) -> SearchPage:
    """Text search, best match first. Without ``q`` and with ``order`` newest or oldest: the index by date."""
    return _page(shared, params)


@router.post("/search/image", response_model=SearchPage, summary="Search by an uploaded image")
def search_image(
    shared: Shared,
    params: Params,
    image: Annotated[UploadFile, File(description="The query image (JPEG, PNG, WebP, GIF, HEIC, AVIF).")],
) -> SearchPage:
    """The images nearest an uploaded one (with ``q`` too: both, combined). Bodies are bounded by
    MAX_IMAGE_BYTES (413 above)."""
    limit = shared.settings.max_image_bytes
    data = image.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, f"the image is larger than {limit} bytes")
    if not data:
        raise HTTPException(status.HTTP_400_BAD_REQUEST, "the uploaded image is empty")
    return _page(shared, params, image=data)


@router.get("/images/{sha256}/similar", response_model=SearchPage, responses=NOT_FOUND, summary="More like this")
def search_similar(shared: Shared, sha256: SHA256, params: Params) -> SearchPage:
    """The images nearest an indexed one (itself left out); with ``q`` too: both, combined."""
    if shared.clients().index.point(sha256) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no indexed image has the SHA-256 {sha256}")
    return _page(shared, params, like=sha256)


def _source(shared: Services, sha256: str) -> tuple[Source, str]:
    """Where the image is read from (its stored file, else a photo of the library) and its content type."""
    point = shared.clients().index.point(sha256)
    if point is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no indexed image has the SHA-256 {sha256}")
    return source_of(point), point.content_type


@router.get(
    "/images/{sha256}",
    response_class=FileResponse,
    responses={**NOT_FOUND, 200: {"content": {"image/*": {}}, "description": "The image as downloaded or found."}},
    summary="The image itself",
)
def image_file(shared: Shared, sha256: SHA256) -> Response:
    (kind, path), content_type = _source(shared, sha256)
    settings = shared.settings
    if kind == "library":
        try:
            data = read_library_file(settings.photos_dir, path, settings.max_image_bytes)
        except LibraryFileError as exc:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"image {sha256}: {exc}") from None
        return Response(data, media_type=content_type or None)
    try:
        file = resolve_stored_path(shared.settings.images_dir, path)
    except UnsafePathError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"image {sha256} has no stored file") from None
    if not file.is_file():
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"the file of image {sha256} is missing") from None
    return FileResponse(file, media_type=content_type or None)


@router.get(
    "/images/{sha256}/thumbnail",
    response_class=Response,
    responses={**NOT_FOUND, 200: {"content": {"image/jpeg": {}}, "description": "A JPEG, longest side `size`."}},
    summary="A thumbnail of the image",
)
def image_thumbnail(
    shared: Shared,
    sha256: SHA256,
    size: Annotated[int, Query(ge=THUMBNAIL_PX[0], le=THUMBNAIL_PX[1], description="Longest side, pixels.")] = 256,
) -> Response:
    (kind, path), _ = _source(shared, sha256)
    settings = shared.settings
    limits = {"max_bytes": settings.max_image_bytes, "max_pixels": settings.max_image_pixels}
    try:
        if kind == "library":
            data = library_thumbnail(settings.photos_dir, path, size, **limits)
        else:
            data = thumbnail(settings.images_dir, path, size, **limits)
    except ThumbnailError as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(exc)) from None
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})


@router.get("/status", response_model=Status, summary="The index, the embedding service, the queue, the URLs")
def status_figures(shared: Shared) -> Status:
    """The figures of ``dyimages stats --json``: each part says its own error when its service is down."""
    try:
        clients = shared.clients()
    except StoreUnavailable as exc:  # the store down: its part says so, the rest still answer
        client = EmbeddingClient(shared.settings.embedding_service_url, timeout=shared.settings.embedding_timeout_s)
        try:
            return collect_status(None, client, shared.settings, qdrant_error=str(exc))
        finally:
            client.close()
    return collect_status(clients.index, clients.embedding, shared.settings)


@health_router.get("/health", response_model=Health, summary="The API process answers (no token asked)")
def health() -> Health:
    return Health()
