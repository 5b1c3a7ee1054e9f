"""`dyimages`: the operator's command line (stats, search, failures, retry, reindex, drop).

Exit codes: 0 done; 1 the request cannot be done (bad query, unknown image, refused); 2 a setting is
wrong (one line names the variable); 3 a service (Qdrant, the embedding service, RabbitMQ) is not
answering. With ``--json`` the result is one JSON object on stdout; messages go to stderr.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dyimages_common.embedding_api import EmbeddingRequestError, EmbeddingUnavailable
from dyimages_common.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from dyimages_common.storage import FORMATS
from search_app.audit import KINDS, UrlFileUnreadable, audit
from search_app.clients import Clients, open_clients, open_qdrant
from search_app.progress import IngestProgress, IngestSample, ProgressTracker, duration
from search_app.prune import MAX_SHARE, PruneRefused, apply_prune, plan_prune
from search_app.reindex import ReindexResult, messages_for, publish_all
from search_app.search import (
    NEAR_DUPLICATE_COSINE,
    QDRANT_ERRORS,
    CollectionMissing,
    Filters,
    IndexMismatch,
    QdrantUnavailable,
    Query,
    QueryError,
    ServiceEmbedder,
    search,
)
from search_app.settings import AppSettings
from search_app.status import RABBIT_ERRORS, NothingToRetry, collect_failures, collect_status, request_retry

JSON_SCHEMA_VERSION = 1

app = typer.Typer(
    name="dyimages",
    help="Operate DY Images: index statistics, searches, failures, reindexing. Settings come from the "
    "same environment variables as the services (QDRANT_*, EMBEDDING_SERVICE_URL, RABBITMQ_*, IMAGES_DIR, "
    "STATE_DB, APP_*). Exit codes: 0 done, 1 refused, 2 bad setting, 3 a service is not answering.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console()
err = Console(stderr=True)

# Accepted --format names: the content types' short names (jpeg, png, webp, gif).
FORMAT_NAMES = {mime.split("/")[1]: mime for _, mime in FORMATS.values()}


def _settings() -> AppSettings:
    settings = settings_or_exit(AppSettings)
    configure_logging("dyimages", settings.log_level, settings.log_format)
    return settings


def _fail(message: str, code: int) -> NoReturn:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def _clients(settings: AppSettings) -> Iterator[Clients]:
    """Clients for one command; service errors become one plain line and exit code 3."""
    try:
        clients = open_clients(settings)
    except QdrantUnavailable as exc:
        _fail(str(exc), 3)
    try:
        yield clients
    except QdrantUnavailable as exc:
        _fail(str(exc), 3)
    except QDRANT_ERRORS as exc:
        _fail(f"Qdrant is not answering: {exc}", 3)
    except EmbeddingUnavailable as exc:
        _fail(f"the embedding service at {settings.embedding_service_url} is not answering: {exc}", 3)
    finally:
        clients.close()


def _print_json(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **data}, ensure_ascii=False) + "\n")


@app.command()
def stats(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (schema above).")] = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow ingest: pending, downloaded, indexed, rate and ETA, refreshed.")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between refreshes (--watch).")] = 2.0,
    samples: Annotated[int, typer.Option("--samples", min=0, help="Stop after this many refreshes; 0: Ctrl-C.")] = 0,
) -> None:
    """Index size, model, queue depths and URL counts.

    --json prints {"schema_version": 1,
    "index": {"collection", "exists", "points", "model", "weights", "dim", "error"},
    "embedding": {"url", "healthy", "model", "pretrained", "dim", "device", "error"},
    "queue": {"queue", "queued", "dead_lettered", "error"},
    "urls": {"state_db", "counts": {"pending", "retrying", "done", "failed"}, "error"}}.
    A part that could not be read has null values and its "error" says why; the exit code is then 3.
    --watch shows ingest progress until Ctrl-C (or --samples): a bar of the URLs the downloader finished
    (done or failed), the images indexed, both rates and the ETA of the pending URLs (search_app.progress);
    with --json one object per refresh, {"schema_version": 1, "pending", "downloaded", "failed", "indexed",
    "downloaded_fraction", "download_rate": float|null, "index_rate": float|null, "eta_s": float|null}.
    """
    settings = _settings()
    if watch:
        _watch(settings, interval, samples, as_json)
        return
    with _clients(settings) as clients:
        status = collect_status(clients.qdrant, clients.embedding, settings)
    if as_json:
        _print_json(status.to_json())
    else:
        table = Table(show_header=False, box=None)
        index = status.index
        table.add_row("collection", index.collection)
        table.add_row("points", "no collection yet" if not index.exists else str(index.points))
        table.add_row("model / weights / dim", f"{index.model or '-'} / {index.weights or '-'} / {index.dim or '-'}")
        emb = status.embedding
        table.add_row(
            "embedding service",
            f"{emb.model} ({emb.pretrained}), dim {emb.dim}, {emb.device}" if emb.error is None else "unreachable",
        )
        table.add_row("queued", "-" if status.queue.queued is None else str(status.queue.queued))
        table.add_row("dead-lettered", "-" if status.queue.dead_lettered is None else str(status.queue.dead_lettered))
        table.add_row("urls", ", ".join(f"{k} {v}" for k, v in status.urls.counts.items()) or "-")
        out.print(table)
        for part in (status.index, status.embedding, status.queue, status.urls):
            if part.error:
                err.print(f"[yellow]warning:[/yellow] {part.error}", highlight=False, soft_wrap=True)
    if any(part.error for part in (status.index, status.embedding, status.queue, status.urls)):
        raise typer.Exit(3)


def _progress_view(progress: IngestProgress) -> Group:
    sample = progress.sample
    rate = "-" if progress.download_rate is None else f"{progress.download_rate:.1f}/s"
    index_rate = "-" if progress.index_rate is None else f"{progress.index_rate:.1f}/s"
    table = Table(show_header=False, box=None)
    table.add_row("pending", f"{sample.pending:,}")
    table.add_row("downloaded", f"{sample.downloaded:,} ({sample.failed:,} failed) · {rate}")
    table.add_row("indexed", f"{sample.indexed:,} images · {index_rate}")
    table.add_row("ETA", duration(progress.eta_s))
    bar = ProgressBar(total=max(sample.total, 1), completed=sample.finished)
    return Group(Text(f"{sample.finished:,} of {sample.total:,} URLs finished"), bar, table)


def _watch(settings: AppSettings, interval: float, samples: int, as_json: bool) -> None:
    """``stats --watch``: sample the status every ``interval`` seconds and show the progress over the window."""
    tracker = ProgressTracker()
    view = nullcontext() if as_json else Live(console=out, auto_refresh=False)
    with _clients(settings) as clients, view as live:
        taken = 0
        try:
            while True:
                status = collect_status(clients.qdrant, clients.embedding, settings)
                progress = tracker.add(IngestSample.from_status(status, time.monotonic()))
                taken += 1
                if as_json:
                    _print_json(progress.to_json())
                else:
                    live.update(_progress_view(progress), refresh=True)  # type: ignore[union-attr]
                if samples and taken >= samples:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return


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
        _fail(f"unknown --format {', '.join(unknown)}; use one of {', '.join(FORMAT_NAMES)}", 1)
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
            _fail(f"{path} is larger than MAX_IMAGE_BYTES ({settings.max_image_bytes})", 1)
        return path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {path}: {exc.strerror}", 1)


@app.command("search")
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
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (schema above).")] = False,
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
    settings = _settings()
    limit = top_k or settings.app_top_k
    filters = _filters(domain or [], fmt or [], min_width, min_height, min_score, collapse, words)
    query = Query(text=text, image=_read_query_image(image, settings) if image else None, filters=filters)
    if query.is_empty():
        _fail("nothing to search for: give a TEXT or --image", 1)
    with _clients(settings) as clients:
        try:
            hits = search(
                clients.qdrant,
                settings.qdrant_collection,
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
            _fail(str(exc), 1)
    if as_json:
        parsed = query.parsed
        _print_json(
            {
                "collection": settings.qdrant_collection,
                "query": {
                    "text": text,
                    "positive": parsed.positive,
                    "negatives": list(parsed.negatives),
                    "image": str(image) if image else None,
                    "top_k": limit,
                    "offset": offset,
                    "filters": {
                        "domains": list(filters.domains),
                        "content_types": list(filters.content_types),
                        "min_width": filters.min_width,
                        "min_height": filters.min_height,
                        "min_score": filters.min_score,
                        "collapse": filters.collapse,
                        "match_words": filters.match_words,
                    },
                },
                "results": [hit.to_json() for hit in hits],
            }
        )
        return
    if not hits:
        out.print("no results" + (f" scoring at least {min_score}" if min_score is not None else ""))
        return
    table = Table("#", "score", "size", "format", "image")
    table.add_column("url", overflow="fold")
    for hit in hits:
        size = f"{hit.width}x{hit.height}"
        similar = f" +{len(hit.similar)} similar" if hit.similar else ""
        table.add_row(str(hit.rank), f"{hit.score:.3f}", size, hit.content_type, hit.sha256[:12] + similar, hit.url)
    out.print(table)


@app.command()
def failures(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many of each kind.")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (schema above).")] = False,
) -> None:
    """Downloads that failed for good, and messages the indexer dead-lettered, with reasons.

    Dead-lettered messages are only looked at: they stay in the dead-letter queue.
    A URL refused by the SSRF guard says which DOWNLOADER_ALLOWED_NETWORKS entry would allow it ("hint").
    --json prints {"schema_version": 1,
    "downloads": [{"url", "reason", "attempts", "updated_at", "hint": str|null}],
    "dead_letters": [{"reason", "sha256", "url", "path", "dead_lettered_at", "body"}],
    "downloads_error": str|null, "dead_letters_error": str|null} (newest downloads first, oldest dead letters first).
    """
    settings = _settings()
    found = collect_failures(settings, limit=limit)
    if as_json:
        _print_json(found.to_json())
    else:
        downloads = Table(title=f"Failed downloads ({len(found.downloads)})")
        for name in ("url", "reason", "attempts", "when"):
            downloads.add_column(name, overflow="fold")
        for row in found.download_rows():
            reason = row["reason"] + (f"\n{row['hint']}" if row["hint"] else "")
            downloads.add_row(row["url"], reason, str(row["attempts"]), row["updated_at"])
        out.print(downloads)
        dead = Table(title=f"Dead-lettered messages ({len(found.dead_letters)})")
        for name in ("reason", "image", "url", "when"):
            dead.add_column(name, overflow="fold")
        for letter in found.dead_letters:
            what = letter.url or letter.body[:60]
            dead.add_row(letter.reason, (letter.sha256 or "")[:12], what, letter.dead_lettered_at or "")
        out.print(dead)
    for error in (found.downloads_error, found.dead_letters_error):
        if error:
            err.print(f"[yellow]warning:[/yellow] {error}", highlight=False, soft_wrap=True)
    if found.downloads_error or found.dead_letters_error:
        raise typer.Exit(3)


@app.command()
def reindex() -> None:
    """Republish every stored image in IMAGES_DIR to the indexer's queue (for example after a model change).

    Run `dyimages drop --yes` first when the model changed, then restart the indexer. Images whose source
    URL is unknown are skipped and listed. Each message is confirmed by RabbitMQ before it is counted.
    """
    settings = _settings()
    result = ReindexResult()
    try:  # only to fall back on the URLs the index holds; the indexer may hold an embedded folder now
        qdrant = open_qdrant(settings)
    except QdrantUnavailable as exc:
        err.print(f"[yellow]warning:[/yellow] {exc}; source URLs come from the downloader state only", soft_wrap=True)
        qdrant = None
    try:
        messages = messages_for(settings, qdrant, result)
    finally:
        if qdrant is not None:
            qdrant.close()
    progress = Progress(TextColumn("publishing"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)
    try:
        with progress:
            task = progress.add_task("publish", total=len(messages))
            result.published = publish_all(settings, messages, lambda n: progress.advance(task, n))
    except RABBIT_ERRORS as exc:
        _fail(f"RabbitMQ at {settings.rabbitmq_host}:{settings.rabbitmq_port} is not answering: {exc!r}", 3)
    for path, reason in result.skipped:
        err.print(f"skipped {path}: {reason}", highlight=False, soft_wrap=True)
    out.print(
        f"republished {result.images} of {result.found} stored images ({result.published} messages, one per "
        f"source URL) to {settings.rabbitmq_queue}" + (f" ({len(result.skipped)} skipped)" if result.skipped else "")
    )


@app.command()
def drop(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: delete the collection and every vector in it.")] = False,
) -> None:
    """Delete the collection (every vector; images on disk stay). Needs --yes."""
    settings = _settings()
    if not yes:
        _fail(f"this deletes collection {settings.qdrant_collection!r}; run again with --yes to confirm", 1)
    with _clients(settings) as clients:
        existed = clients.qdrant.delete_collection(settings.qdrant_collection)
    out.print(
        f"deleted collection {settings.qdrant_collection}"
        if existed
        else f"collection {settings.qdrant_collection} did not exist"
    )


@app.command()
def prune(
    yes: Annotated[bool, typer.Option("--yes", help="Remove them; default: only list them.")] = False,
    max_share: Annotated[
        float, typer.Option("--max-share", min=0.0, max=1.0, help="Refuse to remove more than this share of images.")
    ] = MAX_SHARE,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (schema above).")] = False,
) -> None:
    """List the images whose every URL has left URLS_FILE; with --yes remove their points and files.

    A dry run by default. Refused (exit 1, nothing removed) when URLS_FILE lists no URL, or when more than
    --max-share (default half) of the indexed images would go: a truncated URL file never removes anything
    by itself. URLS_FILE missing or unreadable: exit 2. --yes needs write access to IMAGES_DIR and STATE_DB
    (the downloader's volume; the app mounts it read-only): stop the downloader and run it where that volume
    is writable. --json prints {"schema_version": 1, "listed_urls": int, "indexed": int, "removed": bool,
    "images": [{"sha256", "path", "urls"}]}.
    """
    settings = _settings()
    with _clients(settings) as clients:
        try:
            plan = plan_prune(settings, clients.qdrant, max_share=max_share)
            if yes:
                apply_prune(settings, clients.qdrant, plan)
        except UrlFileUnreadable as exc:
            _fail(str(exc), 2)
        except PruneRefused as exc:
            _fail(str(exc), 1)
        except sqlite3.Error as exc:
            _fail(f"cannot use the downloader state {settings.state_db_path}: {exc}", 3)
    if as_json:
        _print_json(plan.to_json())
        return
    for point in plan.remove:
        out.print(f"{point.sha256[:12]} {point.path} ({', '.join(point.urls)})", highlight=False, soft_wrap=True)
    verb = "removed" if plan.removed else "would remove"
    out.print(
        f"{verb} {len(plan.remove)} of {plan.indexed} indexed images (no URL of theirs among the "
        f"{plan.listed_urls} in {settings.urls_file})" + ("" if yes or not plan.remove else "; --yes removes them"),
        highlight=False,
        soft_wrap=True,
    )


AUDIT_HELP = (
    "Check that the books balance: URL file (URLS_FILE), downloader state, images folder, index and dead letters.\n\n"
    "Exit 0 when they balance, 1 when any problem is found, 2 when URLS_FILE cannot be read, 3 when a store is "
    "not answering. Run it on an idle pipeline: work in flight (pending or retrying downloads, unconfirmed or "
    "queued messages, dead-lettered images) is counted apart, not as a problem.\n\n"
    '--json prints {"schema_version": 1, "balanced": bool, '
    '"counts": {"url_file": {"urls", "invalid_lines"}, "state": {"rows", "pending", "retrying", "done", "failed"}, '
    '"images": {"files", "done_images"}, "index": {"exists", "model", "points"}, '
    '"queue": {"queued", "dead_lettered"}}, '
    '"in_flight": {"pending", "retrying", "unconfirmed", "queued_for_index", "dead_lettered"}, '
    '"problem_counts": {kind: int}, "problems": [{"kind", "detail", "url", "sha256", "path"}]}.\n\n'
    "Problem kinds: " + "; ".join(f"{kind}: {meaning}" for kind, meaning in KINDS.items()) + "."
)


@app.command("audit", help=AUDIT_HELP)
def audit_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (schema above).")] = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Problems listed in the text output.")] = 50,
) -> None:
    """Check that the books balance (see AUDIT_HELP)."""
    settings = _settings()
    with _clients(settings) as clients:  # Qdrant's errors: exit 3
        try:
            report = audit(settings, clients.qdrant)
        except UrlFileUnreadable as exc:
            _fail(str(exc), 2)
        except sqlite3.Error as exc:
            _fail(f"cannot read the downloader state {settings.state_db_path}: {exc}", 3)
        except RABBIT_ERRORS as exc:
            _fail(f"RabbitMQ at {settings.rabbitmq_host}:{settings.rabbitmq_port} is not answering: {exc!r}", 3)
    if as_json:
        _print_json(report.to_json())
    else:
        table = Table(show_header=False, box=None)
        for part, numbers in report.counts.items():
            table.add_row(part, ", ".join(f"{name} {value}" for name, value in numbers.items()))
        table.add_row("in flight", ", ".join(f"{name} {value}" for name, value in report.in_flight.items()))
        out.print(table)
        for problem in report.problems[:limit]:
            what = problem.url or problem.path or problem.sha256 or ""
            out.print(f"{problem.kind}: {what} ({problem.detail})", highlight=False, soft_wrap=True)
        if len(report.problems) > limit:
            out.print(f"... and {len(report.problems) - limit} more (--limit, --json)")
        kinds = ", ".join(f"{kind} {count}" for kind, count in sorted(report.kinds().items()))
        out.print("the books balance" if report.balanced else f"{len(report.problems)} problem(s): {kinds}")
    if not report.balanced:
        raise typer.Exit(1)


@app.command()
def retry(
    reason: Annotated[
        str | None, typer.Option("--reason", help="Only URLs that failed with this reason (e.g. refused_address).")
    ] = None,
    url: Annotated[list[str] | None, typer.Option("--url", help="Only this failed URL (repeatable).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object (schema above).")] = False,
) -> None:
    """Fetch failed downloads again: every failed URL, those failed with --reason, or the --url given.

    The downloader does it (it alone writes its state): the request goes to its control queue
    (<RABBITMQ_QUEUE>.control) and waits there while the downloader is stopped; the matching failed URLs
    go back to pending and are fetched again, attempts counted from zero. Fix the cause first (for
    refused_address: DOWNLOADER_ALLOWED_NETWORKS, then restart the downloader). Exit 1 when the state
    shows no failed URL matching (nothing is sent), 3 when RabbitMQ does not take the request.
    --json prints {"schema_version": 1, "request_id": str, "reason": str|null, "urls": [str],
    "matching": int|null, "matching_urls": [str]|null, "state_error": str|null}
    ("matching" is null when the state cannot be read here; the request is sent anyway).
    """
    settings = _settings()
    try:
        outcome = request_retry(settings, reason=reason, urls=tuple(url or ()), requested_by="dyimages")
    except NothingToRetry as exc:
        _fail(str(exc), 1)
    except RABBIT_ERRORS as exc:
        _fail(f"RabbitMQ at {settings.rabbitmq_host}:{settings.rabbitmq_port} is not answering: {exc!r}", 3)
    if outcome.state_error:
        err.print(f"[yellow]warning:[/yellow] {outcome.state_error}", highlight=False, soft_wrap=True)
    if as_json:
        _print_json(outcome.to_json())
        return
    if outcome.matching is None:
        out.print(f"asked the downloader to fetch {outcome.request.describe()} again")
        return
    for failure in outcome.matching[:20]:
        out.print(f"{failure.url} ({failure.reason})", highlight=False, soft_wrap=True)
    more = " (first 20 above)" if len(outcome.matching) > 20 else ""
    out.print(f"asked the downloader to fetch {len(outcome.matching)} failed URL(s) again{more}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
