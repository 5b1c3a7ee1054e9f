"""The qdrant-client for the Qdrant server, or for qdrant-client's own embedded mode (``QDRANT_EMBEDDED=local``).

Only modules of :mod:`dyimages_common.store.qdrant` import qdrant-client.
"""

from __future__ import annotations

import warnings
from typing import Any

from qdrant_client import QdrantClient

from dyimages_common.settings import QdrantSettings


def connect_qdrant(settings: QdrantSettings) -> QdrantClient:
    """A client for qdrant-client's embedded mode in QDRANT_PATH (``QDRANT_EMBEDDED=local``) or the server.

    The server is spoken to over plain HTTP unless TLS is asked for (``QDRANT_HTTPS=true``, or an
    ``https://`` QDRANT_URL). qdrant-client would otherwise switch to TLS whenever an API key is
    given, and compose's Qdrant (API key, no TLS, private network) would never answer. The key goes
    in Qdrant's ``api-key`` header either way; qdrant-client's warning about a key over plain HTTP
    is silenced because that is the deployment compose makes on purpose.
    """
    if settings.qdrant_path is not None:
        settings.qdrant_path.mkdir(parents=True, exist_ok=True)
        return QdrantClient(path=str(settings.qdrant_path))
    api_key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    where: dict[str, Any]
    if settings.qdrant_url is not None:
        # The URL says scheme, host, port and prefix; port=None keeps the scheme's default port.
        where = {"url": settings.qdrant_url, "port": None}
    else:
        where = {"host": settings.qdrant_host, "port": settings.qdrant_port, "https": settings.qdrant_https}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Api key is used with an insecure connection", category=UserWarning)
        return QdrantClient(**where, api_key=api_key, timeout=30)
