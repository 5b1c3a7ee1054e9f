"""Image URLs: the URL file's format, the downloader's per-URL state, and the operator's refetch requests."""
