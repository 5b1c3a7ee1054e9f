"""`dyimages`: the operator's command line (stats, search, failures, retry, reindex, drop, prune, audit).

This module only wires the commands into one typer app; each lives in a module of its own job:
cli_status (stats), cli_search (search), cli_failures (failures, retry), cli_maintenance (reindex, drop,
prune, audit), and cli_context holds what they share (settings, clients, errors, JSON output).

Exit codes (dyimages_common.process.exit_codes): 0 done; 1 the request cannot be done (bad query, unknown image,
refused); 2 a setting is wrong (one line names the variable); 3 a service (Qdrant, the embedding service,
RabbitMQ) is not answering. With ``--json`` the result is one JSON object on stdout; messages go to stderr.
"""

from __future__ import annotations

import typer

from search_app import cli_failures, cli_maintenance, cli_reindex, cli_search, cli_status

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
app.command("stats")(cli_status.stats)
app.command("search")(cli_search.search_command)
app.command("failures")(cli_failures.failures)
app.command("reindex")(cli_reindex.reindex)
app.command("drop")(cli_reindex.drop)
app.command("prune")(cli_maintenance.prune)
app.command("audit", help=cli_maintenance.AUDIT_HELP)(cli_maintenance.audit_command)
app.command("retry")(cli_failures.retry)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
