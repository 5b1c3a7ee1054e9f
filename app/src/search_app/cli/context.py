"""What every `dyimages` command needs: its settings, its service clients, its two consoles, one-line
failures with the shared exit codes, and the versioned JSON output.

Kept apart from the commands so that each command module (cli_search, cli_status, cli_failures,
cli_maintenance) reports errors and prints JSON the same way, and `cli.py` only wires them together.
"""

from __future__ import annotations

import json
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, NoReturn

import typer
from rich.console import Console

from dyimages_common.embeddings.client import EmbeddingUnavailable
from dyimages_common.process import exit_codes
from dyimages_common.process.logs import configure_logging
from dyimages_common.settings import settings_or_exit
from dyimages_common.store.errors import StoreFolderError, StoreUnavailable
from search_app.clients import Clients, open_clients
from search_app.settings import AppSettings

JSON_SCHEMA_VERSION = 1

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print one JSON object (schema above).")]


# Libraries that log or warn on their own when a service is away (a connection refused, a version check that
# failed): the command says it once, in its own line, so these speak only at LOG_LEVEL=DEBUG.
CHATTY_LIBRARIES = ("aiormq", "aio_pika", "pamqp", "httpx", "httpcore", "qdrant_client", "urllib3", "asyncio")
_quiet_libraries = False  # set by the `dyimages` program itself (main), not by a test that imports the commands


def quiet_libraries() -> None:
    """From now on, the libraries' own warnings and log lines stay out of the command's output (below DEBUG)."""
    global _quiet_libraries
    _quiet_libraries = True


def load_settings() -> AppSettings:
    """The app's settings (a wrong one: one line and exit 2) with logging configured from them."""
    settings = settings_or_exit(AppSettings)
    configure_logging("dyimages", settings.log_level, settings.log_format)
    if _quiet_libraries and settings.log_level != "DEBUG":
        warnings.simplefilter("ignore")
        for name in CHATTY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    return settings


def fail(message: str, code: int) -> NoReturn:
    """One plain error line on stderr, then exit with ``code`` (one of :mod:`dyimages_common.process.exit_codes`)."""
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {message}", highlight=False, soft_wrap=True)


def rabbit_down(settings: AppSettings, exc: BaseException) -> NoReturn:
    fail(
        f"RabbitMQ at {settings.rabbitmq_host}:{settings.rabbitmq_port} is not answering: {exc!r}",
        exit_codes.SERVICE_DOWN,
    )


@contextmanager
def service_clients(settings: AppSettings) -> Iterator[Clients]:
    """Clients for one command; a service that does not answer becomes one plain line and exit 3."""
    try:
        clients = open_clients(settings)
    except StoreUnavailable as exc:
        fail(str(exc), exit_codes.SERVICE_DOWN)
    except StoreFolderError as exc:  # QDRANT_PATH holds another engine's folder: a setting to fix
        fail(str(exc), exit_codes.BAD_SETTING)
    try:
        yield clients
    except StoreUnavailable as exc:
        fail(str(exc), exit_codes.SERVICE_DOWN)
    except EmbeddingUnavailable as exc:
        fail(
            f"the embedding service at {settings.embedding_service_url} is not answering: {exc}",
            exit_codes.SERVICE_DOWN,
        )
    finally:
        clients.close()


def print_json(data: dict[str, Any]) -> None:
    """One JSON object on stdout, tagged with the schema version scripts check."""
    sys.stdout.write(json.dumps({"schema_version": JSON_SCHEMA_VERSION, **data}, ensure_ascii=False) + "\n")
