"""Per-process resources of the Streamlit app: settings, clients, and the caches of query vectors and thumbnails.

Clients are made once per process (``st.cache_resource``, closed when the cache is cleared); query
vectors are kept in the process under the model that made each one (:class:`ProcessVectors`, at most
APP_QUERY_CACHE_SIZE), thumbnails with ``st.cache_data`` bounded by APP_THUMBNAIL_CACHE_SIZE. Nothing
here runs at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.process.logs import configure_logging
from dyimages_common.settings import SettingsError, load_settings
from search_app.clients import Clients, open_clients
from search_app.metrics_server import start_metrics
from search_app.search.cache import QueryCache
from search_app.search.cache_vectors import CachingEmbedder, ProcessVectors, ServiceIdentity
from search_app.search.engine import facet_values
from search_app.search.thumbnails import Source, library_thumbnail, thumbnail
from search_app.search.vectors import Embedder, ServiceEmbedder
from search_app.settings import AppSettings


@st.cache_resource(show_spinner=False)
def _configure_logging(level: str, fmt: str) -> bool:
    configure_logging("app", level, fmt)
    return True


def settings() -> AppSettings:
    """The settings, or a plain error on the page (naming the variable) and a stopped script."""
    try:
        loaded = load_settings(AppSettings)
    except SettingsError as exc:
        st.error(f"The app is misconfigured:\n\n```\n{exc}\n```")
        st.stop()
        raise  # unreachable: st.stop() raises
    _configure_logging(loaded.log_level, loaded.log_format)
    start_metrics(loaded.metrics_port)  # python -m search_app started it already; this covers `streamlit run`
    return loaded


def _settings_key(settings: AppSettings) -> str:
    return settings.model_dump_json()


@st.cache_resource(show_spinner=False, on_release=lambda clients: clients.close())
def _clients(_settings: AppSettings, key: str) -> Clients:
    return open_clients(_settings)


def clients(settings: AppSettings) -> Clients:
    """The process's clients for these settings (raises StoreUnavailable while Qdrant cannot be opened)."""
    return _clients(settings, _settings_key(settings))


@dataclass(frozen=True)
class Caches:
    vectors: ProcessVectors
    thumbnail: Callable[[str, str, int, int, int], bytes]
    library_thumbnail: Callable[[str, str, int, int, int], bytes]


@st.cache_resource(show_spinner=False)
def _caches(query_entries: int, thumbnail_entries: int) -> Caches:
    @st.cache_data(max_entries=thumbnail_entries, show_spinner=False)
    def thumbnail_bytes(images_dir: str, path: str, size: int, max_bytes: int, max_pixels: int) -> bytes:
        return thumbnail(Path(images_dir), path, size, max_bytes=max_bytes, max_pixels=max_pixels)

    @st.cache_data(max_entries=thumbnail_entries, show_spinner=False)
    def library_thumbnail_bytes(photos_dir: str, path: str, size: int, max_bytes: int, max_pixels: int) -> bytes:
        folder = Path(photos_dir) if photos_dir else None
        return library_thumbnail(folder, path, size, max_bytes=max_bytes, max_pixels=max_pixels)

    return Caches(
        vectors=ProcessVectors(query_entries), thumbnail=thumbnail_bytes, library_thumbnail=library_thumbnail_bytes
    )


def caches(settings: AppSettings) -> Caches:
    return _caches(settings.app_query_cache_size, settings.app_thumbnail_cache_size)


def _store(settings: AppSettings) -> str:
    return str(settings.qdrant_path or f"{settings.qdrant_host}:{settings.qdrant_port}")


@st.cache_resource(show_spinner=False, on_release=lambda cache: cache.close() if cache else None)
def _query_cache(url: str, timeout_s: float, results_ttl_s: int, store: str) -> QueryCache | None:
    return QueryCache(url, store=store, timeout_s=timeout_s, results_ttl_s=results_ttl_s) if url else None


def query_cache(settings: AppSettings) -> QueryCache | None:
    """The process's Redis query cache, or None when REDIS_URL is empty."""
    ttl_s = settings.app_results_cache_ttl_s
    return _query_cache(settings.redis_url, settings.redis_timeout_s, ttl_s, _store(settings))


@st.cache_resource(show_spinner=False)
def _identity(_client: EmbeddingClient, service_url: str) -> ServiceIdentity:
    return ServiceIdentity(_client)


def embedder(settings: AppSettings, client: EmbeddingClient) -> Embedder:
    """One query's embedder: vectors from the process's cache, behind the Redis query cache when there is
    one, each kept under the model that made it."""
    expected = _identity(client, settings.embedding_service_url)
    local = CachingEmbedder(caches(settings).vectors, ServiceEmbedder(client), expected)
    shared = query_cache(settings)
    return local if shared is None else shared.embedder(local, expected)


@st.cache_data(ttl=120, max_entries=16, show_spinner=False)
def _domains(_clients: Clients, store: str, collection: str) -> list[str]:
    return facet_values(_clients.index, "domains")


def domain_choices(settings: AppSettings, clients: Clients) -> list[str]:
    """The source domains in the index, most images first; refreshed every two minutes (a facet
    over every point is a full scan in embedded mode)."""
    return _domains(clients, _store(settings), settings.qdrant_collection)


def thumbnail_of(settings: AppSettings, source: Source, size: int) -> bytes:
    """A cached JPEG thumbnail of a stored image or a library photo (:func:`search_app.search.thumbnails.source_of`;
    raises ThumbnailError for a missing or refused file)."""
    kind, path = source
    if kind == "library":
        photos = str(settings.photos_dir or "")
        return caches(settings).library_thumbnail(
            photos, path, size, settings.max_image_bytes, settings.max_image_pixels
        )
    return caches(settings).thumbnail(
        str(settings.images_dir), path, size, settings.max_image_bytes, settings.max_image_pixels
    )
