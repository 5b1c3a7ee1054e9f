"""The Qdrant client and the `images` collection schema.

One point per distinct image (id from :func:`dyimages_common.points.point_id`), cosine distance,
vector size from the model. The collection records the model that made its vectors in its
metadata; a collection made by another model, or with another size, is never mixed with new
vectors: :func:`ensure_collection` raises :class:`CollectionMismatchError`.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from qdrant_client import QdrantClient, models

from dyimages_common.settings import QdrantSettings

log = logging.getLogger(__name__)

# Payload fields the UI filters on get an index (a no-op in embedded mode, which is brute force).
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    "sha256": models.PayloadSchemaType.KEYWORD,
    "domains": models.PayloadSchemaType.KEYWORD,
    "content_type": models.PayloadSchemaType.KEYWORD,
    "width": models.PayloadSchemaType.INTEGER,
    "height": models.PayloadSchemaType.INTEGER,
    "model": models.PayloadSchemaType.KEYWORD,
    # Words of the source URLs (file names, paths) for the search's word matching: without a text
    # index the server answers a full-text match by scanning every payload.
    "urls": models.PayloadSchemaType.TEXT,
}

REINDEX_HINT = (
    "To reindex with the new model: `dyimages drop --yes` (deletes the collection), restart the "
    "indexer, then `dyimages reindex` (republishes every stored image); or set QDRANT_COLLECTION "
    "to a new name."
)


class CollectionMismatchError(RuntimeError):
    """The collection exists but was made by another model or with another vector size."""


def connect_qdrant(settings: QdrantSettings) -> QdrantClient:
    """A client for the embedded folder (QDRANT_PATH) or the Qdrant server.

    The server is spoken to over plain HTTP unless TLS is asked for (``QDRANT_HTTPS=true``, or an
    ``https://`` QDRANT_URL). qdrant-client would otherwise switch to TLS whenever an API key is
    given, and compose's Qdrant (API key, no TLS, private network) would never answer. The key goes
    in Qdrant's ``api-key`` header either way; qdrant-client's warning about a key over plain HTTP
    is silenced because that is the deployment compose makes on purpose.
    """
    if settings.qdrant_path is not None:
        settings.qdrant_path.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(settings.qdrant_path))
    api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    where: dict[str, Any]
    if settings.qdrant_url is not None:
        # The URL says scheme, host, port and prefix; port=None keeps the scheme's default port.
        where = {"url": settings.qdrant_url, "port": None}
    else:
        where = {"host": settings.qdrant_host, "port": settings.qdrant_port, "https": settings.qdrant_https}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Api key is used with an insecure connection", category=UserWarning)
        return QdrantClient(**where, api_key=api_key, timeout=30)


def collection_model(client: QdrantClient, name: str) -> tuple[str | None, int | None]:
    """The (model, vector size) an existing collection was made with, or (None, None)."""
    if not client.collection_exists(name):
        return None, None
    config = client.get_collection(name).config
    vectors = config.params.vectors
    size = vectors.size if isinstance(vectors, models.VectorParams) else None
    model = (config.metadata or {}).get("model")
    return (str(model) if model is not None else None), size


def collection_weights(client: QdrantClient, name: str) -> str | None:
    """The pretrained tag recorded by :func:`ensure_collection` (None if absent or not recorded)."""
    if not client.collection_exists(name):
        return None
    weights = (client.get_collection(name).config.metadata or {}).get("pretrained")
    return str(weights) if weights is not None else None


def ensure_collection(client: QdrantClient, name: str, *, dim: int, model: str, pretrained: str | None = None) -> bool:
    """Create the collection for ``model`` if absent; refuse one made by another model.

    ``pretrained`` (the weights' tag), when given, is recorded too and checked against an
    existing collection's: one architecture with other weights gives incompatible vectors.
    Returns True when it was created. Safe to call from several processes at once: a
    concurrent create by another replica is detected and checked like an existing one.
    """
    existing_model, existing_dim = collection_model(client, name)
    if existing_dim is None:
        metadata: dict[str, object] = {"model": model, "dim": dim}
        if pretrained is not None:
            metadata["pretrained"] = pretrained
        try:
            client.create_collection(
                name,
                vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE),
                metadata=metadata,
            )
        except Exception:
            if not client.collection_exists(name):
                raise
            return ensure_collection(client, name, dim=dim, model=model, pretrained=pretrained)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # embedded mode: indexes are no-ops
            for field, schema in PAYLOAD_INDEXES.items():
                client.create_payload_index(name, field, field_schema=schema)
        log.info("created collection %s (model %s, dim %d)", name, model, dim)
        return True
    if existing_dim != dim or (existing_model is not None and existing_model != model):
        raise CollectionMismatchError(
            f"collection {name!r} holds vectors of model {existing_model!r} (dim {existing_dim}), "
            f"but the embedding service runs {model!r} (dim {dim}). {REINDEX_HINT}"
        )
    existing_weights = collection_weights(client, name) if pretrained is not None else None
    if existing_weights is not None and existing_weights != pretrained:
        raise CollectionMismatchError(
            f"collection {name!r} holds vectors of model {existing_model!r} with weights {existing_weights!r}, "
            f"but the embedding service runs it with weights {pretrained!r}. {REINDEX_HINT}"
        )
    return False
