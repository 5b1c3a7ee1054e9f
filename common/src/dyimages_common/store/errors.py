"""What can go wrong with the vector store, classified once for the app and the indexer.

Every call through :class:`dyimages_common.image_index.ImageIndex` turns the store client's own
exceptions into these (:func:`classify`), so no caller keeps a list of the client's exception types.
"""

from __future__ import annotations

import sqlite3

import httpx
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

# What "the embedded folder is held by another process" looks like: qdrant-client's local mode raises a
# RuntimeError with this text (portalocker holds the folder's lock).
_FOLDER_IN_USE = "already accessed"

REINDEX_HINT = (
    "To reindex with the new model: `dyimages reindex` builds a collection for it beside the old one "
    "and swaps when it is complete (the old one serves searches until then)."
)


class StoreUnavailable(RuntimeError):
    """The store cannot answer now (unreachable, overloaded, disk busy): try again later."""


class StoreInUse(StoreUnavailable):
    """The embedded folder (QDRANT_PATH) is held by another process; embedded mode allows one at a time."""


class CollectionMissing(RuntimeError):
    """No collection yet: nothing has been indexed."""


class CollectionMismatchError(RuntimeError):
    """The collection exists but was made by another model, weights or vector size."""


class StoreConflict(RuntimeError):
    """Other writers kept changing the same points for every round: retry the batch later."""


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, UnexpectedResponse):
        return exc.status_code is None or exc.status_code >= 500 or exc.status_code == 429
    return isinstance(
        exc, ResponseHandlingException | httpx.HTTPError | sqlite3.OperationalError | ConnectionError | TimeoutError
    )


def classify(exc: BaseException, where: str = "") -> BaseException:
    """The error a caller should see for a failed store call: one of this module's, or ``exc`` itself
    (a bug or a refused request: not something to retry)."""
    if isinstance(exc, StoreUnavailable | CollectionMissing | CollectionMismatchError | StoreConflict):
        return exc
    if isinstance(exc, RuntimeError) and _FOLDER_IN_USE in str(exc):
        return StoreInUse(
            f"the embedded Qdrant folder {where or ''} is in use by another process (the app, the indexer or "
            "another dyimages command); embedded mode allows one process at a time, so stop it or use the "
            "Qdrant server"
        )
    if _transient(exc):
        return StoreUnavailable(f"Qdrant is not answering: {exc!r}")
    if isinstance(exc, UnexpectedResponse) and exc.status_code == 404:
        return CollectionMissing(f"not found: {exc}")
    return exc
