"""The Qdrant Edge engine (``qdrant-edge-py``): Qdrant's own shard in this process, in the QDRANT_PATH folder.
The only place that imports qdrant_edge."""
