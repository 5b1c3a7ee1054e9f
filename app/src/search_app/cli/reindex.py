"""`dyimages reindex` and `dyimages drop`: the index's collections, built beside each other and swapped.

See :mod:`search_app.ops.reindex` for the steps and :mod:`dyimages_common.store.builds` for the alias.
"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from dyimages_common.process import exit_codes
from dyimages_common.store import builds as index_builds
from search_app.cli.context import err, fail, load_settings, out, rabbit_down, service_clients
from search_app.ops.reindex import ReindexIncomplete, ReindexResult, finish, messages_for, publish_all, start
from search_app.ops.reindex_lock import LockUnavailable, ReindexRunning, reindex_lock
from search_app.ops.status import RABBIT_ERRORS
from search_app.search.cache import forget_pages
from search_app.settings import AppSettings


def _progress(label: str) -> Progress:
    return Progress(TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), console=err)


def reindex(
    finish_only: Annotated[
        bool, typer.Option("--finish", help="Publish nothing: only wait for the new collection and swap.")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the indexer and swap (not in embedded mode).")
    ] = True,
    timeout: Annotated[float, typer.Option("--timeout", min=0.0, help="Seconds to wait for the indexer.")] = 3600.0,
) -> None:
    """Rebuild the index beside the serving one (for example after a model change), then swap atomically.

    Makes a collection for the model the embedding service runs (or resumes the one an earlier reindex left),
    republishes every stored image in IMAGES_DIR to the indexer's queue (each message confirmed by RabbitMQ;
    images whose source URL is unknown are skipped and listed), waits until the new collection holds every
    one, then points QDRANT_COLLECTION (an alias) at it in one step and deletes the old collection. Searches
    read the old collection until then; a failed or interrupted reindex leaves it serving, and running this
    again resumes. Embedded mode (QDRANT_PATH) allows one process at a time: there the command stops after
    publishing; start the indexer, and when it is idle stop it and run `dyimages reindex --finish`.
    One reindex at a time: a second one (--finish included) refuses with one line while another runs (a lock
    on RabbitMQ, freed when that command ends or dies). Exit 1 when the new collection is incomplete after
    --timeout (nothing swapped) or another reindex is running; 3 when RabbitMQ does not answer.
    """
    settings = load_settings()
    try:
        with reindex_lock(settings):
            _reindex(settings, finish_only=finish_only, wait=wait, timeout=timeout)
    except ReindexRunning as exc:
        fail(str(exc), exit_codes.REFUSED)
    except LockUnavailable as exc:
        fail(str(exc), exit_codes.SERVICE_DOWN)


def _reindex(settings: AppSettings, *, finish_only: bool, wait: bool, timeout: float) -> None:
    embedded = settings.qdrant_path is not None
    with service_clients(settings) as clients:
        index = clients.index
        if not finish_only:
            info = clients.embedding.info()
            name, resumed = start(index, info)
            serving = index.serving()
            verb = "resuming" if resumed else "building"
            beside = "nothing served before: it serves now" if serving == name else f"beside {serving}"
            out.print(
                f"{verb} {name} for {info.model} ({info.pretrained}), {beside}",
                soft_wrap=True,
                highlight=False,
            )
        result = ReindexResult()
        messages = messages_for(settings, index, result)
        for path, reason in result.skipped:
            err.print(f"skipped {path}: {reason}", highlight=False, soft_wrap=True)
        if not finish_only:
            try:
                with _progress("publishing") as progress:
                    task = progress.add_task("publish", total=len(messages))
                    result.published = publish_all(settings, messages, lambda n: progress.advance(task, n))
            except RABBIT_ERRORS as exc:
                rabbit_down(settings, exc)
            out.print(
                f"republished {result.images} of {result.found} stored images ({result.published} messages, one "
                f"per source URL) to {settings.rabbitmq_queue}"
                + (f" ({len(result.skipped)} skipped)" if result.skipped else "")
                + (f"; with them {result.library_images} photo library image(s)" if result.library_images else ""),
                soft_wrap=True,
                highlight=False,
            )
            if embedded or not wait:
                out.print(
                    "when the indexer is idle: `dyimages reindex --finish` (the serving collection serves until then)",
                    soft_wrap=True,
                    highlight=False,
                )
                return
        expected = {message.sha256 for message in messages}
        try:
            with _progress("indexed") as progress:
                task = progress.add_task("indexed", total=len(expected))
                new, old = finish(
                    index,
                    expected,
                    timeout_s=0.0 if embedded else timeout,
                    on_progress=lambda held, _: progress.update(task, completed=held),
                )
        except ReindexIncomplete as exc:
            fail(str(exc), exit_codes.REFUSED)
        except RuntimeError as exc:  # nothing being built
            fail(str(exc), exit_codes.REFUSED)
    forget_pages(settings.redis_url)  # cached pages name the old collection's images: never read again
    out.print(
        f"{settings.qdrant_collection} now searches {new} ({len(expected)} images)"
        + (f"; deleted {old}" if old else ""),
        soft_wrap=True,
        highlight=False,
    )


def drop(
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: delete the collection and every vector in it.")] = False,
) -> None:
    """Delete the index (its collection, any being built, their aliases; images on disk stay). Needs --yes."""
    settings = load_settings()
    if not yes:
        fail(f"this deletes index {settings.qdrant_collection!r}; run again with --yes to confirm", exit_codes.REFUSED)
    with service_clients(settings) as clients:
        deleted = index_builds.drop(clients.index)
    forget_pages(settings.redis_url)
    gone = f"deleted {', '.join(deleted)}" if deleted else f"index {settings.qdrant_collection} did not exist"
    out.print(gone, soft_wrap=True, highlight=False)
