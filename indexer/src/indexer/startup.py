"""Start-up: learn the model from the embedding service, open the collection made for it, connect to
RabbitMQ. Each step waits (backing off) for a service that is not there yet; settings that can never
work stop the indexer with one line (:class:`StartupError`, or the store's own errors)."""

from __future__ import annotations

import logging

import aio_pika
from aio_pika.abc import AbstractRobustConnection
from pydantic import ValidationError

from dyimages_common.embeddings.client import AsyncEmbeddingClient, EmbeddingUnavailable, ModelInfo
from dyimages_common.messaging.rabbit import connect
from indexer.outages import retry_until_done
from indexer.settings import IndexerSettings
from indexer.store import Store, StoreUnavailable

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """The indexer cannot start with these settings (the message says which and why)."""


async def learn_model(settings: IndexerSettings, client: AsyncEmbeddingClient) -> ModelInfo:
    """The embedding service's model, dimension and weights (``/info``), once it answers."""
    try:
        info = await retry_until_done(
            "embedding", (EmbeddingUnavailable,), client.info, maximum_s=settings.indexer_retry_max_s
        )
    except ValidationError as exc:
        raise StartupError(
            f"EMBEDDING_SERVICE_URL={settings.embedding_service_url!r} answers /info, "
            "but not like the embedding service"
        ) from exc
    log.info("embedding service runs %s (%s, dim %d, %s)", info.model, info.pretrained, info.dim, info.device)
    return info


async def open_collection(settings: IndexerSettings, store: Store, info: ModelInfo) -> None:
    """Make sure the collection is this model's (creating it when there is none)."""
    created = await retry_until_done(
        "qdrant",
        (StoreUnavailable,),
        lambda: store.open(dim=info.dim, model=info.model, pretrained=info.pretrained),
        maximum_s=settings.indexer_retry_max_s,
    )
    if not created:
        log.info("using the existing collection %s", settings.qdrant_collection)


async def connect_broker(settings: IndexerSettings) -> AbstractRobustConnection:
    """A robust RabbitMQ connection, once the broker answers."""
    return await retry_until_done(
        "rabbitmq",
        (OSError, aio_pika.exceptions.AMQPConnectionError),
        lambda: connect(settings, "indexer"),
        maximum_s=settings.indexer_retry_max_s,
    )
