"""The indexer's Prometheus metrics (names fixed by the shared dashboard: keep them exactly)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

INDEXED = Counter("dyimages_indexer_indexed_total", "Messages whose image is written to Qdrant and acknowledged")
DEAD_LETTERED = Counter(
    "dyimages_indexer_dead_lettered_total",
    "Messages sent to the dead-letter queue, by reason (a dyimages_common.reasons.Reason value)",
    ["reason"],
)
LIBRARY_REFUSED = Counter(
    "dyimages_indexer_library_refused_total",
    "Library messages whose photo the embedding service refused, sent back to the downloader's library "
    "state instead of the dead-letter queue, by reason",
    ["reason"],
)
BATCH_SIZE = Histogram("dyimages_indexer_batch_size", "Messages per batch", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
EMBED_SECONDS = Histogram("dyimages_indexer_embed_seconds", "Time of one /embed request for a batch, retries included")
UPSERT_SECONDS = Histogram("dyimages_indexer_upsert_seconds", "Time to write one batch to Qdrant, retries included")
QUEUE_DEPTH = Gauge("dyimages_indexer_queue_depth", "Messages ready in the work queue (last check)")
RETRIES = Counter("dyimages_indexer_retries_total", "Retries after a transient fault, by target", ["target"])
