"""Searching the index: the result types (model), the search itself (engine), query vectors, near-duplicate
folding, the Redis query cache, and how a hit reads and looks (hit_text, thumbnails); shared by the UI, the
CLI, the HTTP API and the benchmarks."""
