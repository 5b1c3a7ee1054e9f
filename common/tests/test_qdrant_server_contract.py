"""How our services reach a Qdrant *server*: the scheme, the path and the ``api-key`` header on the wire.

The real qdrant-client, built by our own ``connect_qdrant`` from the values docker-compose.yml gives
the indexer and the app (a dummy API key, as `./scripts/init-env` would write one), talks to
``RecordingEndpoint`` — a recording stand-in for Qdrant's REST API, since no Qdrant server binary
can be had here. Only the host and port are pointed at the stand-in; everything else is compose's.

What a real Qdrant would answer is not checked here (see docs/architecture.md, "Server-only
features"): this pins down what the client sends.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from dyimages_common.settings import QdrantSettings
from dyimages_common.store.qdrant.connect import connect_qdrant
from testkit.compose import DUMMY_DOTENV, service_environment, settings_as_compose_gives
from testkit.recording_http import RecordingEndpoint, self_signed

pytestmark = pytest.mark.unit

SERVICES = ("indexer", "app")
KEY = DUMMY_DOTENV["QDRANT_API_KEY"]


def _exists_request(endpoint: RecordingEndpoint, prefix: str = "") -> None:
    """The one request a collection_exists() call must have left, with the key in its header; and the
    version check qdrant-client makes at connection (in a thread of its own) carried the key too."""
    version_check = endpoint.wait_for(prefix or "/")
    assert version_check.headers.get("api-key") == KEY
    asked = [r for r in endpoint.requests if r.path == f"{prefix}/collections/images/exists"]
    assert len(asked) == 1, [r.path for r in endpoint.requests]
    assert asked[0].scheme == endpoint.scheme
    assert asked[0].method == "GET"
    assert asked[0].headers.get("api-key") == KEY


def _ask_exists(settings: QdrantSettings, endpoint: RecordingEndpoint, prefix: str = "") -> None:
    """Connect with our own connect_qdrant, ask whether the collection exists, check what arrived."""
    client = connect_qdrant(settings)
    try:
        assert client.collection_exists(settings.qdrant_collection) is True
    finally:
        client.close()
    _exists_request(endpoint, prefix)


@pytest.mark.parametrize("service", SERVICES)
def test_compose_values_talk_plain_http_with_the_api_key_header(service: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose's Qdrant serves plain HTTP with an API key: the key must not switch the client to TLS."""
    environment = service_environment(service)
    assert environment["QDRANT_HOST"] == "qdrant"
    assert environment["QDRANT_PORT"] == "6333"
    assert environment["QDRANT_API_KEY"] == KEY
    assert environment["QDRANT_HTTPS"] == "false"  # what compose passes when .env says nothing
    assert environment["QDRANT_URL"] == ""
    with RecordingEndpoint() as endpoint:
        settings = settings_as_compose_gives(
            QdrantSettings, environment, monkeypatch, QDRANT_HOST="127.0.0.1", QDRANT_PORT=str(endpoint.port)
        )
        _ask_exists(settings, endpoint)
    assert {r.scheme for r in endpoint.requests} == {"http"}


@pytest.mark.parametrize("service", SERVICES)
def test_qdrant_https_true_speaks_tls_and_still_sends_the_key(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))  # httpx (inside qdrant-client) trusts the stand-in
    environment = service_environment(service)
    with RecordingEndpoint(tls=tls) as endpoint:
        settings = settings_as_compose_gives(
            QdrantSettings,
            environment,
            monkeypatch,
            QDRANT_HOST="127.0.0.1",
            QDRANT_PORT=str(endpoint.port),
            QDRANT_HTTPS="true",
        )
        _ask_exists(settings, endpoint)


@pytest.mark.filterwarnings("ignore:Failed to obtain server version:UserWarning")
def test_qdrant_https_true_never_falls_back_to_plain_http(monkeypatch: pytest.MonkeyPatch) -> None:
    """Against a plain-HTTP endpoint a TLS client gets no answer: no request is ever sent in the clear."""
    with RecordingEndpoint() as endpoint:
        settings = settings_as_compose_gives(
            QdrantSettings,
            service_environment("indexer"),
            monkeypatch,
            QDRANT_HOST="127.0.0.1",
            QDRANT_PORT=str(endpoint.port),
            QDRANT_HTTPS="true",
        )
        client = connect_qdrant(settings)
        try:
            with pytest.raises(Exception, match=r"(?i)ssl|tls|record|protocol|disconnected"):
                client.collection_exists(settings.qdrant_collection)
            for thread in threading.enumerate():  # its failing version check warns here, not in the next test
                if "_check_compatibility" in thread.name:
                    thread.join(timeout=30)
        finally:
            client.close()
    assert endpoint.requests == []


def test_qdrant_url_overrides_host_port_and_https(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """QDRANT_URL wins over compose's QDRANT_HOST/PORT: its scheme, host, port and path prefix are used."""
    environment = service_environment("app")
    with RecordingEndpoint() as endpoint:
        settings = settings_as_compose_gives(
            QdrantSettings,
            environment,
            monkeypatch,
            QDRANT_HTTPS="true",  # the URL's http:// wins over it
            QDRANT_URL=f"http://127.0.0.1:{endpoint.port}/behind-a-proxy",
        )
        assert settings.qdrant_host == "qdrant"  # still compose's, and not used
        _ask_exists(settings, endpoint, prefix="/behind-a-proxy")

    tls = self_signed(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(tls.cert))
    with RecordingEndpoint(tls=tls) as endpoint:
        settings = settings_as_compose_gives(
            QdrantSettings, environment, monkeypatch, QDRANT_URL=f"https://127.0.0.1:{endpoint.port}"
        )
        _ask_exists(settings, endpoint)


@pytest.mark.parametrize("url", ["qdrant:6333", "ftp://qdrant:6333", "https://"])
def test_a_qdrant_url_without_http_scheme_and_host_is_refused_at_start_up(url: str) -> None:
    from dyimages_common.settings import SettingsError, load_settings

    with pytest.raises(SettingsError, match="QDRANT_URL"):
        load_settings(QdrantSettings, qdrant_url=url)


def test_an_empty_qdrant_url_means_none() -> None:
    from dyimages_common.settings import load_settings

    assert load_settings(QdrantSettings, qdrant_url="").qdrant_url is None


def test_a_new_collection_asks_the_server_for_the_configured_shards_and_replicas() -> None:
    """Qdrant's distributed mode fixes a collection's shards and copies when it is made: the store's
    first collection (the indexer's, or `dyimages reindex`'s) carries QDRANT_SHARD_NUMBER and the
    two factors in the create request; by default one shard, one copy (a single server)."""
    import re

    from dyimages_common.store.builds import ensure_serving
    from dyimages_common.store.factory import open_store
    from testkit.qdrant_rest import QdrantRestStandIn

    def created(**layout: int) -> dict[str, Any]:
        with QdrantRestStandIn() as server:
            settings = QdrantSettings(qdrant_host="127.0.0.1", qdrant_port=server.port, qdrant_path=None, **layout)
            store = open_store(settings)
            try:
                assert ensure_serving(store, dim=8, model="ViT-B-32", pretrained=None)
            finally:
                store.close()
            made = re.compile(r"^/collections/images_[^/?]+$")
            (create,) = [r for r in server.requests if r.method == "PUT" and made.match(r.path)]
            return create.body

    body = created(qdrant_shard_number=3, qdrant_replication_factor=2, qdrant_write_consistency_factor=2)
    assert (body["shard_number"], body["replication_factor"], body["write_consistency_factor"]) == (3, 2, 2)
    assert body["vectors"]["size"] == 8
    default = created()
    assert (default["shard_number"], default["replication_factor"], default["write_consistency_factor"]) == (1, 1, 1)


def test_a_write_consistency_above_the_replicas_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="cannot exceed QDRANT_REPLICATION_FACTOR"):
        QdrantSettings(qdrant_replication_factor=2, qdrant_write_consistency_factor=3)
