"""The clients a process needs, made once: the image index (store seam) and the embedding service."""

from __future__ import annotations

from dataclasses import dataclass

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.store.factory import open_store
from dyimages_common.store.protocol import ImageStore
from search_app.settings import AppSettings


@dataclass
class Clients:
    settings: AppSettings
    index: ImageStore
    embedding: EmbeddingClient

    def close(self) -> None:
        self.embedding.close()
        self.index.close()


def open_index(settings: AppSettings) -> ImageStore:
    """Connect; StoreInUse (a StoreUnavailable) when the embedded folder is held by another process."""
    return open_store(settings)


def open_clients(settings: AppSettings) -> Clients:
    index = open_index(settings)
    embedding = EmbeddingClient(settings.embedding_service_url, timeout=settings.embedding_timeout_s)
    return Clients(settings=settings, index=index, embedding=embedding)
