"""Logging set-up for every process: plain text for people, or one JSON object per line.

Pass values as arguments (``log.info("stored %s", sha)``) and fields a machine should find as
``extra={"sha256": sha, "url": url}``: the JSON format puts extras in the object.

With the JSON format a crash is JSON too: :func:`configure_logging` installs the hooks Python calls
for an exception nobody caught (in the main thread or any other), and they log it as one JSON line
with the traceback in its ``exc_info`` field. Without them the interpreter (or typer's rich
handler, which each entry point's ``typer.Typer`` installs first) prints a multi-line traceback that a
log pipeline splits into unrelated lines. Only what fails before logging is configured (a broken
install that cannot import) still prints the interpreter's own traceback.
"""

from __future__ import annotations

import logging
import sys
import threading
from types import TracebackType

from pythonjsonlogger.json import JsonFormatter


def configure_logging(service: str, level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields={"service": service},
                datefmt="%Y-%m-%dT%H:%M:%S%z",
            )
        )
    else:
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {service} %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiormq", "aio_pika", "httpx", "httpcore", "urllib3"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
    if fmt == "json":
        sys.excepthook = _log_uncaught
        threading.excepthook = _log_uncaught_in_thread


def _log_uncaught(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """sys.excepthook: the exception that ends the process, as one log record (JSON when configured)."""
    logging.getLogger("crash").critical(
        "the process stops on an exception nobody handled: %s: %s",
        kind.__name__,
        value,
        exc_info=(kind, value, tb),
        extra={"exception": kind.__name__},
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    """threading.excepthook: a thread that died on an exception, as one log record."""
    if args.exc_type is SystemExit:
        return
    logging.getLogger("crash").critical(
        "thread %s stopped on an exception nobody handled: %s: %s",
        args.thread.name if args.thread is not None else "?",
        args.exc_type.__name__,
        args.exc_value,
        exc_info=(args.exc_type, args.exc_value, args.exc_traceback),  # type: ignore[arg-type]
        extra={"exception": args.exc_type.__name__},
    )
