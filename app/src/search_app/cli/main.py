"""`dyimages`: the operator's command line (stats, search, failures, retry, reindex, drop, prune, audit).

This module only wires the commands into one typer app; each lives in a module of its own job in this
package: stats, search, failures (failures, retry), reindex (reindex, drop), maintenance (prune, audit), and
context holds what they share (settings, clients, errors, JSON output). ``python -m search_app.cli.main``
runs it where the ``dyimages`` script is not on the PATH.

Exit codes (dyimages_common.process.exit_codes): 0 done; 1 the request cannot be done (unknown image, refused,
another reindex running); 2 a setting or a command-line argument is wrong (one line names it); 3 a service
(Qdrant, the embedding service, RabbitMQ) is not answering; 4 the index holds another model's vectors than the
embedding service makes (reindex). With ``--json`` the result is one JSON object on stdout; messages go to stderr.
"""

from __future__ import annotations

from typing import Annotated

import typer

from dyimages_common import version
from search_app.cli import context, failures, maintenance, reindex, search, stats

app = typer.Typer(
    name="dyimages",
    help="Operate DY Images: index statistics, searches, failures, reindexing. Settings come from the "
    "same environment variables as the services (QDRANT_*, EMBEDDING_SERVICE_URL, RABBITMQ_*, IMAGES_DIR, "
    "STATE_DB, APP_*). Exit codes: 0 done, 1 refused, 2 bad setting or argument, 3 a service is not answering, "
    "4 the index was built by another model (dyimages reindex).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(wanted: bool) -> None:
    if wanted:
        typer.echo(f"dyimages {version()}")
        raise typer.Exit


@app.callback()
def options(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print the release and exit.")
    ] = False,
) -> None:
    """Options before the command: ``--version`` prints the release (one version for every package)."""


app.command("stats")(stats.stats)
app.command("search")(search.search_command)
app.command("failures")(failures.failures)
app.command("reindex")(reindex.reindex)
app.command("drop")(reindex.drop)
app.command("prune")(maintenance.prune)
app.command("audit", help=maintenance.AUDIT_HELP)(maintenance.audit_command)
app.command("retry")(failures.retry)


def main() -> None:
    context.quiet_libraries()
    app()


if __name__ == "__main__":
    main()
