"""The exit codes every DY Images command and service uses, in one place so none means two things.

A supervisor (compose, systemd, a script) tells "fix the settings" from "wait for a service" from
"reindex" by the code alone, whichever program exited.
"""

from __future__ import annotations

OK = 0
"""Done."""

REFUSED = 1
"""Refused or failed: the message says why (nothing matched, the books do not balance, a start-up error)."""

BAD_SETTING = 2
"""A setting or a command-line argument is wrong: one line names the variable."""

SERVICE_DOWN = 3
"""A service (Qdrant, the embedding service, RabbitMQ, the downloader state) is not answering."""

MODEL_MISMATCH = 4
"""The embedding service runs another model or other weights than the collection's: the indexer stops
rather than mix vectors; run the collection's model or reindex."""
