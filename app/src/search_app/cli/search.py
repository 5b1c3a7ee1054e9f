"""`dyimages search`: the UI's search from a terminal or a script (a table, or ``--json``)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from dyimages_common.embeddings.client import EmbeddingRequestError
from dyimages_common.process import exit_codes
from dyimages_common.store.errors import CollectionMissing
from dyimages_common.store.types import Order
from search_app.cli.context import JsonFlag, err, fail, load_settings, out, print_json, service_clients
from search_app.search.collapse import NEAR_DUPLICATE_COSINE
from search_app.search.engine import search
from search_app.search.hit_text import date_label
from search_app.search.model import FORMAT_NAMES, Filters, Hit, Query, folder_filter
from search_app.search.vectors import IndexMismatch, QueryError, ServiceEmbedder
from search_app.settings import AppSettings

FORMAT_LIST = ", ".join(FORMAT_NAMES)

DATE_FORMATS = ["%Y-%m-%d"]


def _filters(
    *,
    domain: list[str],
    fmt: list[str],
    min_width: int,
    min_height: int,
    min_score: float | None,
    collapse: bool,
    words: bool,
    date_from: datetime | None,
    date_to: datetime | None,
    order: Order,
    folder: str | None = None,
) -> Filters:
    unknown = [name for name in fmt if name.lower() not in FORMAT_NAMES]
    if unknown:
        fail(f"unknown --format {', '.join(unknown)}; use one of {', '.join(FORMAT_NAMES)}", exit_codes.BAD_SETTING)
    if date_from and date_to and date_from > date_to:
        fail(f"--from {date_from:%Y-%m-%d} is after --to {date_to:%Y-%m-%d}", exit_codes.BAD_SETTING)
    return Filters(
        domains=tuple(d.lower().removeprefix("www.") for d in domain),
        content_types=tuple(FORMAT_NAMES[name.lower()] for name in fmt),
        min_width=min_width,
        min_height=min_height,
        min_score=min_score,
        collapse=NEAR_DUPLICATE_COSINE if collapse else None,
        match_words=words,
        date_from=date_from.date() if date_from else None,
        date_to=date_to.date() if date_to else None,
        order=order,
        folder=folder_filter(folder),
    )


def _read_query_image(path: Path, settings: AppSettings) -> bytes:
    try:
        if path.stat().st_size > settings.max_image_bytes:
            fail(f"{path} is larger than MAX_IMAGE_BYTES ({settings.max_image_bytes})", exit_codes.REFUSED)
        return path.read_bytes()
    except OSError as exc:
        fail(f"cannot read --image {path}: {exc.strerror}", exit_codes.BAD_SETTING)


def _filters_json(filters: Filters) -> dict[str, Any]:
    return {
        "domains": list(filters.domains),
        "content_types": list(filters.content_types),
        "min_width": filters.min_width,
        "min_height": filters.min_height,
        "min_score": filters.min_score,
        "collapse": filters.collapse,
        "match_words": filters.match_words,
        "date_from": filters.date_from.isoformat() if filters.date_from else None,
        "date_to": filters.date_to.isoformat() if filters.date_to else None,
        "order": filters.order,
        "folder": filters.folder,
    }


def _print_table(hits: list[Hit], scored: bool) -> None:
    """One row per result; the image's short hash never wraps (it is what a person copies), the rest folds."""
    table = Table("#", *(["score"] if scored else []), "date", "camera", "size", "format")
    table.add_column("image", no_wrap=True, min_width=12)
    table.add_column("url", overflow="fold")
    for hit in hits:
        size = f"{hit.width}x{hit.height}"
        similar = f" +{len(hit.similar)} similar" if hit.similar else ""
        score = [f"{hit.score:.3f}"] if scored else []
        camera = Text(hit.camera or "-")  # EXIF text from the photo: shown as it is, never as markup
        kind = hit.content_type.removeprefix("image/")
        row = (str(hit.rank), *score, date_label(hit), camera, size, kind, hit.sha256[:12] + similar)
        table.add_row(*row, Text(hit.url or " ".join(hit.library_paths)))  # a library photo: its path
    out.print(table)


def search_command(
    text: Annotated[str, typer.Argument(help='What to find; "-word" or -"a phrase" excludes.')] = "",
    image: Annotated[Path | None, typer.Option("--image", help="A query image file (alone or with TEXT).")] = None,
    top_k: Annotated[int | None, typer.Option("--top-k", min=1, max=1000, help="Results (default APP_TOP_K).")] = None,
    offset: Annotated[int, typer.Option("--offset", min=0, help="Skip this many results (paging).")] = 0,
    domain: Annotated[list[str] | None, typer.Option("--domain", help="Only this source domain (repeatable).")] = None,
    fmt: Annotated[list[str] | None, typer.Option("--format", help=f"Only {FORMAT_LIST} (repeatable).")] = None,
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
        bool, typer.Option("--words", help="Also match TEXT's words in the source URLs (file name, path) and camera.")
    ] = False,
    date_from: Annotated[
        datetime | None,
        typer.Option("--from", formats=DATE_FORMATS, help="Only photos dated this day (YYYY-MM-DD) or later."),
    ] = None,
    date_to: Annotated[
        datetime | None,
        typer.Option("--to", formats=DATE_FORMATS, help="Only photos dated this day (YYYY-MM-DD) or earlier."),
    ] = None,
    order: Annotated[
        Order,
        typer.Option("--order", help="relevance (best match first), newest or oldest (by the photo's date)."),
    ] = "relevance",
    folder: Annotated[
        str | None,
        typer.Option("--folder", help="Only photos of the photo folder in this folder or below it (2024/summer)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Search by text, image, or both (best first); or, with --order newest/oldest and no query, browse.

    --json prints {"schema_version": 1, "collection": str,
    "query": {"text", "positive", "negatives": [str], "image": str|null, "top_k", "offset",
    "filters": {"domains", "content_types", "min_width", "min_height", "min_score": float|null,
    "collapse": float|null, "match_words": bool, "date_from": str|null, "date_to": str|null, "order": str,
    "folder": str|null}},
    "results": [{"rank", "score", "id", "sha256", "path", "url", "urls", "domains", "content_type",
    "width", "height", "bytes", "downloaded_at", "indexed_at", "model", "taken_at": str|null,
    "camera": str|null, "orientation": int|null, "library_paths": [str], "folders": [str], "date",
    "similar": [sha256]}]}.
    A photo's date ("date") is its EXIF DateTimeOriginal ("taken_at"), else when it was downloaded;
    --from and --to are whole days, inclusive (UTC); --order newest/oldest sorts the matches by it
    (without TEXT or --image: the whole index, filtered, "score" 0).
    "path" is relative to IMAGES_DIR ("" for a photo only in the photo folder), "library_paths" to PHOTOS_DIR;
    "score" is the cosine similarity; an empty index gives "results": [];
    with --min-score no result scores below it (fewer than --top-k results, or none, when matches are weak);
    with --collapse a result within cosine 0.94 of a better one on the same page is listed in that one's
    "similar" instead of on its own (ranks stay those of the uncollapsed list). With --words the order fuses
    (reciprocal rank) the vector ranking with, per word of TEXT (3+ characters, the first 5), the ranking
    of the images whose URLs contain it, and "score" is the fused score, not a cosine.
    """
    settings = load_settings()
    limit = top_k or settings.app_top_k
    filters = _filters(
        domain=domain or [],
        fmt=fmt or [],
        min_width=min_width,
        min_height=min_height,
        min_score=min_score,
        collapse=collapse,
        words=words,
        date_from=date_from,
        date_to=date_to,
        order=order,
        folder=folder,
    )
    query = Query(text=text, image=_read_query_image(image, settings) if image else None, filters=filters)
    if query.is_empty() and not query.is_browse():
        fail(
            "nothing to search for: give a TEXT or --image (or --order newest/oldest to browse)", exit_codes.BAD_SETTING
        )
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
        except IndexMismatch as exc:
            fail(str(exc), exit_codes.MODEL_MISMATCH)
        except (QueryError, EmbeddingRequestError) as exc:
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
    _print_table(hits, scored=not query.is_browse())
