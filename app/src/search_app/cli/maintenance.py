"""`dyimages prune` and `audit`: keeping the index, the files and the URL list in step (reindex, drop: cli_reindex)."""

from __future__ import annotations

import sqlite3
from typing import Annotated

import typer
from rich.table import Table

from dyimages_common.process import exit_codes
from search_app.cli.context import (
    JsonFlag,
    fail,
    load_settings,
    out,
    print_json,
    rabbit_down,
    service_clients,
)
from search_app.ops.audit import KINDS, UrlFileUnreadable, audit
from search_app.ops.prune import MAX_SHARE, PruneRefused, apply_prune, plan_prune
from search_app.ops.status import RABBIT_ERRORS


def prune(
    yes: Annotated[bool, typer.Option("--yes", help="Remove them; default: only list them.")] = False,
    max_share: Annotated[
        float, typer.Option("--max-share", min=0.0, max=1.0, help="Refuse to remove more than this share of images.")
    ] = MAX_SHARE,
    as_json: JsonFlag = False,
) -> None:
    """List the images whose every URL has left URLS_FILE; with --yes remove their points and files.

    A dry run by default. Refused (exit 1, nothing removed) when URLS_FILE lists no URL, or when more than
    --max-share (default half) of the indexed images would go: a truncated URL file never removes anything
    by itself. URLS_FILE missing or unreadable: exit 2. --yes needs write access to IMAGES_DIR and STATE_DB
    (the downloader's volume; the app mounts it read-only): stop the downloader and run it where that volume
    is writable. --json prints {"schema_version": 1, "listed_urls": int, "indexed": int, "removed": bool,
    "images": [{"sha256", "path", "urls"}]}.
    """
    settings = load_settings()
    with service_clients(settings) as clients:
        try:
            plan = plan_prune(settings, clients.index, max_share=max_share)
            if yes:
                apply_prune(settings, clients.index, plan)
        except UrlFileUnreadable as exc:
            fail(str(exc), exit_codes.BAD_SETTING)
        except PruneRefused as exc:
            fail(str(exc), exit_codes.REFUSED)
        except sqlite3.Error as exc:
            fail(f"cannot use the downloader state {settings.state_db_path}: {exc}", exit_codes.SERVICE_DOWN)
    if as_json:
        print_json(plan.to_json())
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
    "Check that the books balance: URL file (URLS_FILE), downloader state, images folder, index and dead letters, "
    "and the photo library (PHOTOS_DIR, looked at by stat as the scanner does, and its state).\n\n"
    "Exit 0 when they balance, 1 when any problem is found, 2 when URLS_FILE cannot be read, 3 when a store is "
    "not answering. Run it on an idle pipeline: work in flight (pending or retrying downloads, unconfirmed or "
    "queued messages, dead-lettered images) is counted apart, not as a problem.\n\n"
    '--json prints {"schema_version": 1, "balanced": bool, '
    '"counts": {"url_file": {"urls", "invalid_lines"}, "state": {"rows", "pending", "retrying", "done", "failed"}, '
    '"images": {"files", "done_images"}, "index": {"exists", "model", "points"}, '
    '"queue": {"queued", "dead_lettered"}, "library": {"recorded", "done", "failed", "in_folder", "error"}}, '
    '"in_flight": {"pending", "retrying", "unconfirmed", "queued_for_index", "dead_lettered", '
    '"library_unconfirmed"}, '
    '"problem_counts": {kind: int}, "problems": [{"kind", "detail", "url", "sha256", "path"}]}.\n\n'
    "Problem kinds: " + "; ".join(f"{kind}: {meaning}" for kind, meaning in KINDS.items()) + "."
)


def audit_command(
    as_json: JsonFlag = False,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Problems listed in the text output.")] = 50,
) -> None:
    """Check that the books balance (see AUDIT_HELP)."""
    settings = load_settings()
    with service_clients(settings) as clients:  # Qdrant's errors: exit 3
        try:
            report = audit(settings, clients.index)
        except UrlFileUnreadable as exc:
            fail(str(exc), exit_codes.BAD_SETTING)
        except sqlite3.Error as exc:
            fail(f"cannot read the downloader state {settings.state_db_path}: {exc}", exit_codes.SERVICE_DOWN)
        except RABBIT_ERRORS as exc:
            rabbit_down(settings, exc)
    if as_json:
        print_json(report.to_json())
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
        raise typer.Exit(exit_codes.REFUSED)
