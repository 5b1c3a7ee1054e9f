"""qdrant-client's failures, as the store's errors (:mod:`dyimages_common.store.errors`)."""

from __future__ import annotations

import sqlite3

import httpx
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from dyimages_common.store.errors import KNOWN, CollectionMissing, StoreInUse, StoreUnavailable

# What "the embedded folder is held by another process" looks like: qdrant-client's local mode raises a
# RuntimeError with this text (portalocker holds the folder's lock).
_FOLDER_IN_USE = "already accessed"


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429
    return isinstance(
        exc, ResponseHandlingException | httpx.HTTPError | sqlite3.OperationalError | ConnectionError | TimeoutError
    )


def classify(exc: BaseException, where: str = "") -> BaseException:
    """The error a caller should see for a failed call: one of the store's, or ``exc`` itself (a bug or a
    refused request: not something to retry)."""
    if isinstance(exc, KNOWN):
        return exc
    if isinstance(exc, RuntimeError) and _FOLDER_IN_USE in str(exc):
        return StoreInUse(
            f"the embedded Qdrant folder {where} is in use by another process (the app, the indexer or "
            "another dyimages command); the embedded store allows one process at a time, so stop it or use "
            "the Qdrant server"
        )
    if _transient(exc):
        return StoreUnavailable(f"Qdrant is not answering: {exc!r}")
    if isinstance(exc, UnexpectedResponse) and exc.status_code == 404:
        return CollectionMissing(f"not found: {exc}")
    if isinstance(exc, UnexpectedResponse) and exc.status_code == 400:  # a request Qdrant refused (wrong input)
        return ValueError(f"Qdrant refused the request: {exc}")
    if isinstance(exc, ValueError) and "not found" in str(exc).lower():  # embedded mode's missing collection
        return CollectionMissing(str(exc))
    return exc
