"""`dyimages stats`: the index, the embedding service, the queue and the URLs at a glance, or (``--watch``)
ingest progress followed live."""

from __future__ import annotations

import time
from contextlib import nullcontext
from typing import Annotated

import typer
from rich.console import Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dyimages_common.process import exit_codes
from search_app.cli.context import JsonFlag, load_settings, out, print_json, service_clients, warn
from search_app.ops.progress import IngestProgress, IngestSample, ProgressTracker, duration
from search_app.ops.status import Status, collect_status
from search_app.settings import AppSettings


def stats(
    as_json: JsonFlag = False,
    watch: Annotated[
        bool, typer.Option("--watch", help="Follow ingest: pending, downloaded, indexed, rate and ETA, refreshed.")
    ] = False,
    interval: Annotated[float, typer.Option("--interval", min=0.1, help="Seconds between refreshes (--watch).")] = 2.0,
    samples: Annotated[int, typer.Option("--samples", min=0, help="Stop after this many refreshes; 0: Ctrl-C.")] = 0,
) -> None:
    """Index size, model, queue depths and URL counts.

    --json prints {"schema_version": 1,
    "index": {"collection", "exists", "serving", "building", "points", "model", "weights", "dim", "error"},
    "embedding": {"url", "healthy", "model", "pretrained", "dim", "device", "error"},
    "queue": {"queue", "queued", "dead_lettered", "error"},
    "urls": {"state_db", "counts": {"pending", "retrying", "done", "failed"}|null, "error"}}.
    A part that could not be read has null values ("exists" and "counts" too: unknown, not false or zero) and
    its "error" says why; the text says "unknown" there; the exit code is then 3.
    --watch shows ingest progress until Ctrl-C (or --samples): a bar of the URLs the downloader finished
    (done or failed), the images indexed, the messages queued for the indexer, both rates and the ETA: the
    time until every known URL is searchable (or failed), at the rate URLs go through downloading and indexing
    (search_app.ops.progress); with --json one object per refresh, {"schema_version": 1, "pending",
    "downloaded", "failed", "indexed", "queued": int|null, "downloaded_fraction", "download_rate": float|null,
    "index_rate": float|null, "eta_s": float|null}.
    """
    settings = load_settings()
    if watch:
        _watch(settings, interval, samples, as_json)
        return
    with service_clients(settings) as clients:
        status = collect_status(clients.index, clients.embedding, settings)
    parts = (status.index, status.embedding, status.queue, status.urls)
    if as_json:
        print_json(status.to_json())
    else:
        out.print(_status_table(status))
        for part in parts:
            if part.error:
                warn(part.error)
    if any(part.error for part in parts):
        raise typer.Exit(exit_codes.SERVICE_DOWN)


UNKNOWN = "unknown"  # what a part that could not be read shows: never "no collection yet" or 0


def _status_table(status: Status) -> Table:
    table = Table(show_header=False, box=None)
    index = status.index
    table.add_row("collection", index.collection)
    if index.error:
        table.add_row("points", UNKNOWN)
        table.add_row("model / weights / dim", UNKNOWN)
    else:
        table.add_row("points", "no collection yet" if not index.exists else str(index.points))
        table.add_row("model / weights / dim", f"{index.model or '-'} / {index.weights or '-'} / {index.dim or '-'}")
    emb = status.embedding
    table.add_row(
        "embedding service",
        f"{emb.model} ({emb.pretrained}), dim {emb.dim}, {emb.device}" if emb.error is None else "unreachable",
    )
    table.add_row("queued", UNKNOWN if status.queue.queued is None else str(status.queue.queued))
    table.add_row("dead-lettered", UNKNOWN if status.queue.dead_lettered is None else str(status.queue.dead_lettered))
    counts = ", ".join(f"{k} {v}" for k, v in status.urls.counts.items())
    table.add_row("urls", UNKNOWN if status.urls.error else counts)
    return table


def _progress_view(progress: IngestProgress) -> Group:
    sample = progress.sample
    rate = "-" if progress.download_rate is None else f"{progress.download_rate:.1f}/s"
    index_rate = "-" if progress.index_rate is None else f"{progress.index_rate:.1f}/s"
    table = Table(show_header=False, box=None)
    table.add_row("pending", f"{sample.pending:,}")
    table.add_row("downloaded", f"{sample.downloaded:,} ({sample.failed:,} failed) · {rate}")
    table.add_row("indexed", f"{sample.indexed:,} images · {index_rate}")
    table.add_row("queued for indexing", UNKNOWN if sample.queued is None else f"{sample.queued:,}")
    table.add_row("ETA (searchable)", duration(progress.eta_s))
    bar = ProgressBar(total=max(sample.total, 1), completed=sample.finished)
    return Group(Text(f"{sample.finished:,} of {sample.total:,} URLs finished"), bar, table)


def _watch(settings: AppSettings, interval: float, samples: int, as_json: bool) -> None:
    """``stats --watch``: sample the status every ``interval`` seconds and show the progress over the window."""
    tracker = ProgressTracker()
    view = nullcontext() if as_json else Live(console=out, auto_refresh=False)
    with service_clients(settings) as clients, view as live:
        taken = 0
        try:
            while True:
                status = collect_status(clients.index, clients.embedding, settings)
                progress = tracker.add(IngestSample.from_status(status, time.monotonic()))
                taken += 1
                if as_json:
                    print_json(progress.to_json())
                else:
                    live.update(_progress_view(progress), refresh=True)  # type: ignore[union-attr]
                if samples and taken >= samples:
                    return
                time.sleep(interval)
        except KeyboardInterrupt:
            return
