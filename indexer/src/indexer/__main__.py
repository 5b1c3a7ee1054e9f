"""``python -m indexer``: consume image messages and index them until stopped (or drained)."""

from __future__ import annotations

from dyimages_common.process.early_stop import exit_cleanly_until_started

# First, before the imports below, which take seconds: a stop asked for meanwhile exits 0.
exit_cleanly_until_started()

import asyncio  # noqa: E402
import logging  # noqa: E402
import sys  # noqa: E402

import typer  # noqa: E402

from dyimages_common.process.logs import configure_logging  # noqa: E402
from dyimages_common.process.metrics import serve_metrics  # noqa: E402
from dyimages_common.settings import settings_or_exit  # noqa: E402
from dyimages_common.store.errors import CollectionMismatchError  # noqa: E402
from indexer.consumer import EXIT_MODEL_MISMATCH, Indexer, StartupError  # noqa: E402
from indexer.settings import IndexerSettings  # noqa: E402
from indexer.store import StoreOpenError  # noqa: E402

log = logging.getLogger("indexer")

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
def main(
    exit_when_idle: bool = typer.Option(
        False, "--exit-when-idle", help="Drain the queue, flush the last batch, exit 0 once nothing is left."
    ),
) -> None:
    """Index every image message on RABBITMQ_QUEUE into the Qdrant collection (settings: INDEXER_*, .env.example)."""
    settings = settings_or_exit(IndexerSettings)
    configure_logging("indexer", settings.log_level, settings.log_format)
    serve_metrics(settings.metrics_port)
    try:
        status = asyncio.run(Indexer(settings, exit_when_idle=exit_when_idle).run())
    except CollectionMismatchError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"indexer: {exc}\n")
        raise SystemExit(EXIT_MODEL_MISMATCH) from None
    except (StartupError, StoreOpenError) as exc:
        # For example QDRANT_PATH held by another process: say so in one line, no traceback.
        log.error("cannot start: %s", exc)
        sys.stderr.write(f"indexer: cannot start: {exc}\n")
        raise SystemExit(1) from None
    raise SystemExit(status)


if __name__ == "__main__":
    app()
