"""`dyimages failures` and `dyimages retry`: what failed for good, and asking the downloader to try again."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from dyimages_common.process import exit_codes
from dyimages_common.reasons import DOWNLOAD_REASONS
from search_app.cli.context import JsonFlag, fail, load_settings, out, print_json, rabbit_down, warn
from search_app.ops.status import RABBIT_ERRORS, Failures, NothingToRetry, collect_failures, request_retry


def failures(
    limit: Annotated[int, typer.Option("--limit", min=1, max=10_000, help="At most this many of each kind.")] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Downloads that failed for good, and messages the indexer dead-lettered, with reasons.

    Dead-lettered messages are only looked at: they stay in the dead-letter queue.
    A URL refused by the SSRF guard says which DOWNLOADER_ALLOWED_NETWORKS entry would allow it ("hint").
    --json prints {"schema_version": 1,
    "downloads": [{"url", "reason" (the recorded "word: detail"), "explanation", "attempts", "updated_at",
    "hint": str|null}],
    "dead_letters": [{"reason" (a word), "detail", "explanation", "sha256", "url", "path", "dead_lettered_at", "body"}],
    "downloads_error": str|null, "dead_letters_error": str|null} (newest downloads first, oldest dead letters first).
    """
    settings = load_settings()
    found = collect_failures(settings, limit=limit)
    if as_json:
        print_json(found.to_json())
    else:
        _print_failures(found)
    for error in (found.downloads_error, found.dead_letters_error):
        if error:
            warn(error)
    if found.downloads_error or found.dead_letters_error:
        raise typer.Exit(exit_codes.SERVICE_DOWN)


def _print_failures(found: Failures) -> None:
    downloads = Table(title=f"Failed downloads ({len(found.downloads)})")
    for name in ("url", "reason", "attempts", "when"):
        downloads.add_column(name, overflow="fold")
    for row in found.download_rows():
        reason = f"{row['reason']}\n({row['explanation']})" + (f"\n{row['hint']}" if row["hint"] else "")
        downloads.add_row(row["url"], reason, str(row["attempts"]), row["updated_at"])
    out.print(downloads)
    dead = Table(title=f"Dead-lettered messages ({len(found.dead_letters)})")
    for name in ("reason", "image", "url", "when"):
        dead.add_column(name, overflow="fold")
    for letter in found.dead_letters:
        what = letter.url or letter.body[:60]
        why = f"{letter.reason.with_detail(letter.detail)}\n({letter.reason.explanation})"
        dead.add_row(why, (letter.sha256 or "")[:12], what, letter.dead_lettered_at or "")
    out.print(dead)


DOWNLOAD_REASON_WORDS = [reason.value for reason in DOWNLOAD_REASONS]


def _download_reason(value: str | None) -> str | None:
    """--reason names a reason a download can fail with. Rows recorded before the reasons were a type
    read as one: ``http_418`` is retried with ``--reason http_4xx``, an unknown word with ``unknown``."""
    if value is None or value in DOWNLOAD_REASON_WORDS:
        return value
    raise typer.BadParameter(
        f"{value!r} is not a reason a download fails with; one of: {', '.join(DOWNLOAD_REASON_WORDS)}"
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
    url: Annotated[list[str] | None, typer.Option("--url", help="Only this failed URL (repeatable).")] = None,
    as_json: JsonFlag = False,
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
    more = " (first 20 above)" if len(outcome.matching) > 20 else ""
    out.print(f"asked the downloader to fetch {len(outcome.matching)} failed URL(s) again{more}")
