"""The clients a process needs, made once: Qdrant (server or embedded folder) and the embedding service."""

from __future__ import annotations

from dataclasses import dataclass

from qdrant_client import QdrantClient

from dyimages_common.embedding_api import EmbeddingClient
from dyimages_common.qdrant import connect_qdrant
from search_app.search import QDRANT_ERRORS, QdrantUnavailable
from search_app.settings import AppSettings


@dataclass
class Clients:
    settings: AppSettings
    qdrant: QdrantClient
    embedding: EmbeddingClient

    def close(self) -> None:
        self.embedding.close()
        self.qdrant.close()


def open_qdrant(settings: AppSettings) -> QdrantClient:
    """Connect, turning "folder in use" (embedded mode) into a clear :class:`QdrantUnavailable`."""
    try:
        return connect_qdrant(settings)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise QdrantUnavailable(
                f"the embedded Qdrant folder {settings.qdrant_path} is in use by another process "
                "(the app, the indexer or another dyimages command); embedded mode allows one process "
                "at a time, so stop it or use the Qdrant server"
            ) from None
        raise
    except QDRANT_ERRORS as exc:
        raise QdrantUnavailable(f"cannot connect to Qdrant: {exc}") from exc


def open_clients(settings: AppSettings) -> Clients:
    qdrant = open_qdrant(settings)
    embedding = EmbeddingClient(settings.embedding_service_url, timeout=settings.embedding_timeout_s)
    return Clients(settings=settings, qdrant=qdrant, embedding=embedding)
