"""`dyimages search`: the UI's search from a terminal or a script (a table, or ``--json``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from dyimages_common import exit_codes
from dyimages_common.embedding_api import EmbeddingRequestError
from dyimages_common.storage import FORMATS
from search_app.cli_context import JsonFlag, err, fail, load_settings, out, print_json, service_clients
from search_app.search import (
    NEAR_DUPLICATE_COSINE,
    CollectionMissing,
    Filters,
    Hit,
    IndexMismatch,
    Query,
    QueryError,
    ServiceEmbedder,
    search,
)
from search_app.settings import AppSettings

# Accepted --format names: the content types' short names (jpeg, png, webp, gif).
FORMAT_NAMES = {mime.split("/")[1]: mime for _, mime in FORMATS.values()}


def _filters(
    domain: list[str],
    fmt: list[str],
    min_width: int,
    min_height: int,
    min_score: float | None,
    collapse: bool,
    words: bool = False,
) -> Filters:
    unknown = [name for name in fmt if name.lower() not in FORMAT_NAMES]
    if unknown:
        fail(f"unknown --format {', '.join(unknown)}; use one of {', '.join(FORMAT_NAMES)}", exit_codes.REFUSED)
    return Filters(
        domains=tuple(d.lower().removeprefix("www.") for d in domain),
        content_types=tuple(FORMAT_NAMES[name.lower()] for name in fmt),
        min_width=min_width,
        min_height=min_height,
        min_score=min_score,
        collapse=NEAR_DUPLICATE_COSINE if collapse else None,
        match_words=words,
    )


def _read_query_image(path: Path, settings: AppSettings) -> bytes:
    try:
        if path.stat().st_size > settings.max_image_bytes:
            fail(f"{path} is larger than MAX_IMAGE_BYTES ({settings.max_image_bytes})", exit_codes.REFUSED)
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror}", exit_codes.REFUSED)


def _filters_json(filters: Filters) -> dict[str, Any]:
    return {
        "domains": list(filters.domains),
        "content_types": list(filters.content_types),
        "min_width": filters.min_width,
        "min_height": filters.min_height,
        "min_score": filters.min_score,
        "collapse": filters.collapse,
        "match_words": filters.match_words,
    }


def _print_table(hits: list[Hit]) -> None:
    table = Table("#", "score", "size", "format", "image")
    table.add_column("url", overflow="fold")
    for hit in hits:
        size = f"{hit.width}x{hit.height}"
        similar = f" +{len(hit.similar)} similar" if hit.similar else ""
        table.add_row(str(hit.rank), f"{hit.score:.3f}", size, hit.content_type, hit.sha256[:12] + similar, hit.url)
    out.print(table)


def search_command(
    text: Annotated[str, typer.Argument(help='What to find; "-word" or -"a phrase" excludes.')] = "",
    image: Annotated[Path | None, typer.Option("--image", help="A query image file (alone or with TEXT).")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=1000, help="Results (default APP_TOP_K).")] = None,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many results (paging).")] = 0,
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Only this source domain (repeatable).")] = None,
    fmt: Annotated[list[str] | None, typer.Option("--format", help="Only jpeg, png, webp or gif (repeatable).")] = None,
    min_width: Annotated[int, typer.Option("--min-width", min=0)] = 0,
    min_height: Annotated[int, typer.Option("--min-height", min=0)] = 0,
    min_score: Annotated[
        float | None,
        typer.Option("--min-score", min=-1.0, max=1.0, help="Hide results whose cosine score is below this."),
    ] = None,
    collapse: Annotated[
        bool, typer.Option("--collapse", help="Fold near-duplicates (cosine >= 0.94) into the better result.")
    ] = False,
    words: Annotated[
        bool, typer.Option("--words", help="Also match TEXT's words in the source URLs (file name, path).")
    ] = False,
    as_json: JsonFlag = False,
) -> None:
    """Search by text, image, or both (best first).

    --json prints {"schema_version": 1, "collection": str,
    "query": {"text", "positive", "negatives": [str], "image": str|null, "top_k", "offset",
    "filters": {"domains", "content_types", "min_width", "min_height", "min_score": float|null,
    "collapse": float|null, "match_words": bool}},
    "results": [{"rank", "score", "id", "sha256", "path", "url", "urls", "domains", "content_type",
    "width", "height", "bytes", "downloaded_at", "indexed_at", "model", "similar": [sha256]}]}.
    "path" is relative to IMAGES_DIR; "score" is the cosine similarity; an empty index gives "results": [];
    with --min-score no result scores below it (fewer than --top-k results, or none, when matches are weak);
    with --collapse a result within cosine 0.94 of a better one on the same page is listed in that one's
    "similar" instead of on its own (ranks stay those of the uncollapsed list). With --words the order fuses
    (reciprocal rank) the vector ranking with, per word of TEXT (3+ characters, the first 5), the ranking
    of the images whose URLs contain it, and "score" is the fused score, not a cosine.
    """
    settings = load_settings()
    limit = top_k or settings.app_top_k
    filters = _filters(domain or [], fmt or [], min_width, min_height, min_score, collapse, words)
    query = Query(text=text, image=_read_query_image(image, settings) if image else None, filters=filters)
    if query.is_empty():
        fail("nothing to search for: give a TEXT or --image", exit_codes.REFUSED)
    with service_clients(settings) as clients:
        try:
            hits = search(
                clients.index,
                ServiceEmbedder(clients.embedding),
                query,
                limit=limit,
                offset=offset,
                negative_weight=settings.app_negative_weight,
            )
        except CollectionMissing:
            hits = []
            err.print("the index is empty: add image URLs to the downloader's list and let the indexer run")
        except (QueryError, EmbeddingRequestError, IndexMismatch) as exc:
            fail(str(exc), exit_codes.REFUSED)
    if as_json:
        parsed = query.parsed
        print_json(
            {
                "collection": settings.qdrant_collection,
                "query": {
                    "text": text,
                    "positive": parsed.positive,
                    "negatives": list(parsed.negatives),
                    "image": str(image) if image else None,
                    "top_k": limit,
                    "offset": offset,
                    "filters": _filters_json(filters),
                },
                "results": [hit.to_json() for hit in hits],
            }
        )
        return
    if not hits:
        out.print("no results" + (f" scoring at least {min_score}" if min_score is not None else ""))
        return
    _print_table(hits)
