"""The indexer's settings: the shared groups plus its own INDEXER_* knobs."""

from __future__ import annotations

from pydantic import Field, model_validator

from dyimages_common.embeddings.client import MAX_ITEMS_PER_REQUEST
from dyimages_common.settings import EmbeddingClientSettings, MetricsSettings, QdrantSettings, RabbitSettings


class IndexerSettings(RabbitSettings, QdrantSettings, EmbeddingClientSettings, MetricsSettings):
    indexer_batch_size: int = Field(
        32, ge=1, le=MAX_ITEMS_PER_REQUEST, description="Most images per /embed request and per upsert."
    )
    indexer_batch_wait_ms: int = Field(
        200, ge=0, le=60_000, description="How long a partial batch waits for more messages before it goes."
    )
    indexer_concurrency: int = Field(
        2,
        ge=1,
        le=16,
        description="Batches in flight at once: the next batch is embedded while the last one is written.",
    )
    indexer_prefetch: int | None = Field(
        None,
        ge=1,
        le=65_535,
        description="Unacknowledged messages the broker may hand this process. "
        "Default: batch size x (concurrency + 1), so a full batch waits while the others are in flight.",
    )
    indexer_idle_exit_s: float = Field(
        2.0, gt=0, le=3600, description="With --exit-when-idle: how long the queue must stay empty before exiting."
    )
    indexer_progress_interval_s: float = Field(10.0, gt=0, description="Seconds between progress log lines.")
    indexer_retry_max_s: float = Field(
        10.0, gt=0, le=600, description="Longest pause between retries while the embedding service or Qdrant is down."
    )
    indexer_embed_attempts: int = Field(
        3,
        ge=1,
        le=20,
        description="Tries of one image whose /embed request fails (5xx, timeout) while the embedding service "
        "answers its probe, before the image is dead-lettered; a failing batch is split first to find it.",
    )
    indexer_shutdown_grace_s: float = Field(
        8.0,
        ge=0,
        description="On SIGTERM: how long batches in flight may take to finish before they are returned "
        "(below Docker's 10 s stop timeout; a kill after it loses nothing either, the broker redelivers).",
    )

    @model_validator(mode="after")
    def _prefetch_holds_a_batch(self) -> IndexerSettings:
        if self.indexer_prefetch is not None and self.indexer_prefetch < self.indexer_batch_size:
            raise ValueError(
                f"INDEXER_PREFETCH ({self.indexer_prefetch}) is below INDEXER_BATCH_SIZE "
                f"({self.indexer_batch_size}): batches could never fill"
            )
        return self

    @property
    def prefetch(self) -> int:
        return self.indexer_prefetch or self.indexer_batch_size * (self.indexer_concurrency + 1)

    @property
    def batch_wait_s(self) -> float:
        return self.indexer_batch_wait_ms / 1000
