"""The indexer: RabbitMQ messages in, batches embedded by the embedding service, points upserted into Qdrant.

Every stored image becomes exactly one searchable point: messages are acknowledged only after
their points are written, point ids come from the image's SHA-256, and a message that can never
be indexed goes to the dead-letter queue with its reason instead of being dropped or retried
forever.
"""
