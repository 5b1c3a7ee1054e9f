"""Qdrant specifics behind the store seam: the client, the collection schema, the name's alias.

Only :mod:`dyimages_common.image_index` (and its helpers) import this module. One point per distinct
image (id from :func:`dyimages_common.points.point_id`), cosine distance, vector size from the model.
A collection records the model (and weights) that made its vectors in its metadata; new vectors are
never mixed into a collection of another model, size or weights (:class:`CollectionMismatchError`).

``QDRANT_COLLECTION`` names an **alias**: the collection behind it is ``<name>_<UTC timestamp>``, and
``dyimages reindex`` builds the next one beside it (alias ``<name>__building``) and swaps the alias in
one ``update_collection_aliases`` call when it is complete. A collection that is really called
``<name>`` (made before aliases were used) is served as it is until the first reindex replaces it.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from qdrant_client import QdrantClient, models

from dyimages_common.points import IndexKind, payload_indexes
from dyimages_common.settings import QdrantSettings
from dyimages_common.store_errors import REINDEX_HINT, CollectionMismatchError

__all__ = ["REINDEX_HINT", "CollectionMismatchError", "connect_qdrant"]

log = logging.getLogger(__name__)

_SCHEMAS = {
    IndexKind.KEYWORD: models.PayloadSchemaType.KEYWORD,
    IndexKind.INTEGER: models.PayloadSchemaType.INTEGER,
    IndexKind.DATETIME: models.PayloadSchemaType.DATETIME,
    IndexKind.TEXT: models.PayloadSchemaType.TEXT,
}
# Payload fields the search filters, orders or word-matches on get an index (a no-op in embedded mode,
# which is brute force): derived from the point model's marks, never listed by hand.
PAYLOAD_INDEXES: dict[str, models.PayloadSchemaType] = {
    name: _SCHEMAS[kind] for name, kind in payload_indexes().items()
}

BUILDING_SUFFIX = "__building"


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


@dataclass(frozen=True)
class CollectionModel:
    """What a collection's metadata says made its vectors."""

    name: str
    model: str | None
    dim: int | None
    weights: str | None

    def check(self, *, dim: int, model: str, pretrained: str | None) -> None:
        """Raise CollectionMismatchError unless vectors of (model, dim, pretrained) belong here."""
        if self.dim != dim or (self.model is not None and self.model != model):
            raise CollectionMismatchError(
                f"collection {self.name!r} holds vectors of model {self.model!r} (dim {self.dim}), "
                f"but the embedding service runs {model!r} (dim {dim}). {REINDEX_HINT}"
            )
        if pretrained is not None and self.weights is not None and self.weights != pretrained:
            raise CollectionMismatchError(
                f"collection {self.name!r} holds vectors of model {self.model!r} with weights {self.weights!r}, "
                f"but the embedding service runs it with weights {pretrained!r}. {REINDEX_HINT}"
            )

    def matches(self, *, dim: int, model: str, pretrained: str | None) -> bool:
        try:
            self.check(dim=dim, model=model, pretrained=pretrained)
        except CollectionMismatchError:
            return False
        return True


def collection_model(client: QdrantClient, name: str) -> CollectionModel | None:
    """The model, size and weights a collection (or alias) was made with; None when it does not exist."""
    if not client.collection_exists(name):
        return None
    config = client.get_collection(name).config
    vectors = config.params.vectors
    metadata = config.metadata or {}
    model, weights = metadata.get("model"), metadata.get("pretrained")
    return CollectionModel(
        name=name,
        model=str(model) if model is not None else None,
        dim=vectors.size if isinstance(vectors, models.VectorParams) else None,
        weights=str(weights) if weights is not None else None,
    )


def create_collection(client: QdrantClient, name: str, *, dim: int, model: str, pretrained: str | None) -> None:
    """A new collection for this model's vectors, with the point model's payload indexes."""
    metadata: dict[str, object] = {"model": model, "dim": dim}
    if pretrained is not None:
        metadata["pretrained"] = pretrained
    client.create_collection(
        name, vectors_config=models.VectorParams(size=dim, distance=models.Distance.COSINE), metadata=metadata
    )
    ensure_payload_indexes(client, name)
    log.info("created collection %s (model %s, dim %d)", name, model, dim)


def ensure_payload_indexes(client: QdrantClient, name: str) -> list[str]:
    """Create the point model's payload indexes the collection lacks (one made by an older release lacks
    ``date`` and ``words``); returns the fields indexed now."""
    existing = set(client.get_collection(name).payload_schema or {})
    missing = [field for field in PAYLOAD_INDEXES if field not in existing]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # embedded mode: indexes are no-ops
        for field in missing:
            client.create_payload_index(name, field, field_schema=PAYLOAD_INDEXES[field])
    return missing


def new_collection_name(alias: str) -> str:
    """``<alias>_<UTC timestamp to the microsecond>``: a fresh name beside the serving one."""
    return f"{alias}_{datetime.now(UTC):%Y%m%dT%H%M%S%fZ}"


def aliases(client: QdrantClient) -> dict[str, str]:
    """alias -> collection, for every alias."""
    return {a.alias_name: a.collection_name for a in client.get_aliases().aliases}


def create_alias(alias: str, collection: str) -> models.CreateAliasOperation:
    return models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=collection, alias_name=alias))


def delete_alias(alias: str) -> models.DeleteAliasOperation:
    return models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))
