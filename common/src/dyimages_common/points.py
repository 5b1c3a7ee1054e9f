"""Qdrant point ids and payload fields shared by the indexer, the app and the CLI."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

# Fixed namespace: the same SHA-256 gives the same point id in every process, forever.
POINT_NAMESPACE = uuid.UUID("5d9b7c1e-8f4a-4c43-9a57-2f0d6f1b9e21")


def point_id(sha256: str) -> str:
    """The Qdrant point id of an image: a UUID derived from its SHA-256."""
    return str(uuid.uuid5(POINT_NAMESPACE, sha256))


def payload_urls(payload: Mapping[str, Any]) -> list[str]:
    """Every source URL of a point: its ``urls`` list, or the single ``url`` of a point written before
    ``urls`` existed (the one place that fallback lives)."""
    urls = payload.get("urls") or [payload.get("url")]
    return [str(url) for url in urls if url]


def url_domain(url: str) -> str:
    """The host of a URL, lower-case and without ``www.``, for the domain filter."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")
