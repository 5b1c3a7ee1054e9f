"""The Qdrant engine through qdrant-client: the server, or qdrant-client's embedded mode. The only place
that imports qdrant-client."""
