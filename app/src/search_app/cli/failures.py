"""`dyimages failures` and `dyimages retry`: what failed for good, and asking the downloader to try again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dyimages_common.process import exit_codes
from dyimages_common.reasons import DOWNLOAD_REASONS, LIBRARY_REASONS
from search_app.cli.context import JsonFlag, fail, load_settings, out, print_json, rabbit_down, warn
from search_app.ops.failures import RABBIT_ERRORS, Failures, NothingToRetry, collect_failures, request_retry


def failures(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many of each kind.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Downloads that failed for good, photo library files refused (by their path in PHOTOS_DIR), and
    messages the indexer dead-lettered, with reasons.

    Dead-lettered messages are only looked at: they stay in the dead-letter queue.
    A URL refused by the SSRF guard says which DOWNLOADER_ALLOWED_NETWORKS entry would allow it ("hint").
    --json prints {"schema_version": 1,
    "downloads": [{"url", "reason" (the recorded "word: detail"), "explanation", "attempts", "updated_at",
    "hint": str|null}],
    "library_files": [{"path", "reason", "explanation", "updated_at"}],
    "dead_letters": [{"reason" (a word), "detail", "explanation", "sha256", "url", "path", "dead_lettered_at", "body"}],
    "downloads_error": str|null, "library_error": str|null, "dead_letters_error": str|null}
    (newest downloads and files first, oldest dead letters first).
    """
    settings = load_settings()
    found = collect_failures(settings, limit=limit)
    if as_json:
        print_json(found.to_json())
    else:
        _print_failures(found)
    for error in found.errors:
        warn(error)
    if found.errors:
        raise typer.Exit(exit_codes.SERVICE_DOWN)


def _print_failures(found: Failures) -> None:
    downloads = Table(title=f"Failed downloads ({len(found.downloads)})")
    for name in ("url", "reason", "attempts", "when"):
        downloads.add_column(name, overflow="fold")
    for row in found.download_rows():
        reason = f"{row['reason']}\n({row['explanation']})" + (f"\n{row['hint']}" if row["hint"] else "")
        downloads.add_row(row["url"], reason, str(row["attempts"]), row["updated_at"])
    out.print(downloads)
    if found.library:
        library = Table(title=f"Photo library files refused ({len(found.library)})")
        for name in ("path", "reason", "when"):
            library.add_column(name, overflow="fold")
        for row in found.library_rows():
            library.add_row(row["path"], f"{row['reason']}\n({row['explanation']})", row["updated_at"])
        out.print(library)
    dead = Table(title=f"Dead-lettered messages ({len(found.dead_letters)})")
    for name in ("reason", "image", "url", "when"):
        dead.add_column(name, overflow="fold")
    for letter in found.dead_letters:
        what = letter.url or letter.body[:60]
        why = f"{letter.reason.with_detail(letter.detail)}\n({letter.reason.explanation})"
        dead.add_row(why, (letter.sha256 or "")[:12], what, letter.dead_lettered_at or "")
    out.print(dead)


DOWNLOAD_REASON_WORDS = list(dict.fromkeys(reason.value for reason in (*DOWNLOAD_REASONS, *LIBRARY_REASONS)))


def _download_reason(value: str | None) -> str | None:
    """--reason names a reason a download or a library file can fail with. Rows recorded before the reasons were a type
    read as one: ``http_418`` is retried with ``--reason http_4xx``, an unknown word with ``unknown``."""
    if value is None or value in DOWNLOAD_REASON_WORDS:
        return value
    raise typer.BadParameter(
        f"{value!r} is not a reason a download fails with (nor a photo library file); one of: "
        f"{', '.join(DOWNLOAD_REASON_WORDS)}"
    )


def retry(
    reason: Annotated[
        str | None,
        typer.Option(
            "--reason",
            callback=_download_reason,
            help="Only URLs that failed with this reason (e.g. refused_address, http_404; "
            "`dyimages failures` shows each URL's).",
        ),
    ] = None,
    url: Annotated[
        list[str] | None,
        typer.Option("--url", help="Only this failed URL, or refused library file by its path (repeatable)."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Fetch failed downloads again, and read refused photo library files again: every one, those failed
    with --reason, or the --url given (a URL, or a library file's path as `dyimages failures` shows it).

    The downloader does it (it alone writes its state): the request goes to its control queue
    (<RABBITMQ_QUEUE>.control) and waits there while the downloader is stopped; the matching failed URLs
    go back to pending and are fetched again, attempts counted from zero. Fix the cause first (for
    refused_address: DOWNLOADER_ALLOWED_NETWORKS, then restart the downloader). Exit 1 when the states
    show no failed URL or library file matching (nothing is sent), 3 when RabbitMQ does not take the request.
    --json prints {"schema_version": 1, "request_id": str, "reason": str|null, "urls": [str],
    "matching": int|null, "matching_urls": [str]|null, "matching_paths": [str], "state_error": str|null}
    ("matching" is null when the state cannot be read here; the request is sent anyway).
    """
    settings = load_settings()
    try:
        outcome = request_retry(settings, reason=reason, urls=tuple(url or ()), requested_by="dyimages")
    except NothingToRetry as exc:
        fail(str(exc), exit_codes.REFUSED)
    except RABBIT_ERRORS as exc:
        rabbit_down(settings, exc)
    if outcome.state_error:
        warn(outcome.state_error)
    if as_json:
        print_json(outcome.to_json())
        return
    if outcome.matching is None:
        out.print(f"asked the downloader to fetch {outcome.request.describe()} again")
        return
    for failure in outcome.matching[:20]:
        out.print(f"{failure.url} ({failure.reason})", highlight=False, soft_wrap=True)
    for path in outcome.matching_paths[:20]:
        out.print(f"{path} (photo library)", highlight=False, soft_wrap=True)
    more = " (first 20 of each above)" if max(len(outcome.matching), len(outcome.matching_paths)) > 20 else ""
    out.print(
        f"asked the downloader to fetch {len(outcome.matching)} failed URL(s) and to read "
        f"{len(outcome.matching_paths)} photo library file(s) again{more}"
    )
