"""What the API's requests share in one process: the settings, the clients (opened on first use, again
after a failure), the Redis query cache and the embedder behind it, and the token check.

Opening lazily keeps the API up while Qdrant or the embedding service is not: requests answer 503 and
say which, and the next request tries again, as the UI does.
"""

from __future__ import annotations

import hmac
import threading
from dataclasses import dataclass, field

from fastapi import HTTPException, Request, status

from search_app.api.settings import ApiSettings
from search_app.clients import Clients, open_clients
from search_app.search.cache import QueryCache, ServiceIdentity
from search_app.search.vectors import Embedder, ServiceEmbedder


@dataclass
class Services:
    settings: ApiSettings
    _clients: Clients | None = None
    _cache: QueryCache | None = None
    _identity: ServiceIdentity | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def clients(self) -> Clients:
        """The process's clients (raises StoreUnavailable while Qdrant cannot be opened)."""
        with self._lock:
            if self._clients is None:
                self._clients = open_clients(self.settings)
                if self.settings.redis_url:
                    store = str(self.settings.qdrant_path or f"{self.settings.qdrant_host}:{self.settings.qdrant_port}")
                    self._cache = QueryCache(
                        self.settings.redis_url,
                        store=store,
                        timeout_s=self.settings.redis_timeout_s,
                        results_ttl_s=self.settings.app_results_cache_ttl_s,
                    )
                    self._identity = ServiceIdentity(self._clients.embedding)
            return self._clients

    @property
    def cache(self) -> QueryCache | None:
        return self._cache

    def embedder(self) -> Embedder:
        """Query vectors from the embedding service, behind the Redis query cache when there is one."""
        local = ServiceEmbedder(self.clients().embedding)
        if self._cache is None or self._identity is None:
            return local
        return self._cache.embedder(local, self._identity)

    def close(self) -> None:
        with self._lock:
            if self._clients is not None:
                self._clients.close()
            if self._cache is not None:
                self._cache.close()
            self._clients = self._cache = self._identity = None


def services(request: Request) -> Services:
    return request.app.state.services


def require_token(request: Request) -> None:
    """With API_TOKEN set, every request carries ``Authorization: Bearer <API_TOKEN>`` (401 otherwise)."""
    token = services(request).settings.api_token.get_secret_value()
    if not token:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            "this API needs its token: send the header 'Authorization: Bearer <API_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
