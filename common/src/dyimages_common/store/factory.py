"""One factory from settings to the image index: the only place that chooses an engine.

``QDRANT_PATH`` unset: the Qdrant server (``QDRANT_HOST``/``QDRANT_URL``). Set: an embedded store in that
folder, Qdrant Edge by default (``QDRANT_EMBEDDED=edge``) or qdrant-client's own embedded mode
(``QDRANT_EMBEDDED=local``, for a folder made before Edge). Engines are imported only when chosen, so a
process pays for, and depends on, the one it uses.
"""

from __future__ import annotations

from dyimages_common.settings import QdrantSettings
from dyimages_common.store.engine import Engine
from dyimages_common.store.index import ImageIndex
from dyimages_common.store.protocol import ImageStore


def open_engine(settings: QdrantSettings) -> Engine:
    """The engine these settings name; StoreInUse when the embedded folder is held, StoreUnavailable when
    the server cannot be reached, StoreFolderError when the folder is another engine's."""
    if settings.qdrant_path is not None and settings.qdrant_embedded == "edge":
        from dyimages_common.store.edge.engine import EdgeEngine

        return EdgeEngine(settings.qdrant_path)
    from dyimages_common.store.qdrant.engine import QdrantEngine

    return QdrantEngine.connect(settings)


def open_store(settings: QdrantSettings) -> ImageStore:
    """The image index named ``QDRANT_COLLECTION`` in the store these settings name."""
    return ImageIndex(open_engine(settings), settings.qdrant_collection)
