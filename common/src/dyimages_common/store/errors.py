"""What can go wrong with the vector store, whatever the engine: the errors every caller catches.

Each engine turns its client's own exceptions into these (its ``classify``), so no caller keeps a list of
an engine's exception types.
"""

from __future__ import annotations

REINDEX_HINT = (
    "To reindex with the new model: `dyimages reindex` builds a collection for it beside the old one "
    "and swaps when it is complete (the old one serves searches until then)."
)


class StoreUnavailable(RuntimeError):
    """The store cannot answer now (unreachable, overloaded, disk busy): try again later."""


class StoreInUse(StoreUnavailable):
    """The embedded folder (QDRANT_PATH) is held by another process; an embedded store has one process."""


class StoreFolderError(RuntimeError):
    """QDRANT_PATH holds something this engine cannot open (another engine's folder): a setting to fix."""


class CollectionMissing(RuntimeError):
    """No collection yet: nothing has been indexed."""


class CollectionMismatchError(RuntimeError):
    """The collection exists but was made by another model, weights or vector size."""


class StoreConflict(RuntimeError):
    """Other writers kept changing the same points for every round: retry the batch later."""


class VectorNeeded(RuntimeError):
    """A point to be written without a vector (only its sources change) is not there (another writer removed
    it meanwhile): the image must be embedded. The batch goes back to the queue and is embedded next time."""


KNOWN = (StoreUnavailable, StoreFolderError, CollectionMissing, CollectionMismatchError, StoreConflict)
