"""Operating the pipeline: status figures and ingest progress, dead letters, audit and prune, reindex; shared
by the CLI and the status page."""
