"""Static checks of docker-compose.yml and the Dockerfiles (no Docker engine runs on this machine).

The compose file is validated against the Compose specification's JSON schema, then checked for the
practices the stack depends on: healthchecks and healthy-waits, pinned images, non-root images built
with the locked dependencies, read-only image mounts where a service only reads, and that every
setting a service reads is given by compose or has a default that works in the stack.
"""

from __future__ import annotations

import asyncio
import importlib
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiormq
import pytest
import yaml
from pydantic_settings import BaseSettings

from dyimages_common.embedding_api import EmbeddingClient
from dyimages_common.qdrant import connect_qdrant
from dyimages_common.rabbit import amqp_url
from dyimages_common.settings import EmbeddingClientSettings, QdrantSettings, RabbitSettings
from testkit import REPO_ROOT
from testkit.compose import DUMMY_DOTENV, service_environment, settings_as_compose_gives, variable_names
from testkit.recording_http import RecordingEndpoint

pytestmark = pytest.mark.unit

COMPOSE = REPO_ROOT / "docker-compose.yml"
GPU_OVERRIDE = REPO_ROOT / "docker-compose.gpu.yml"
OUR_SERVICES = {"downloader", "indexer", "embedding", "app"}


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load(COMPOSE)


def test_compose_files_match_the_compose_specification() -> None:
    check = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run(
        [str(check), "--builtin-schema", "vendor.compose-spec", str(COMPOSE), str(GPU_OVERRIDE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in compose["services"]
            assert condition["condition"] == "service_healthy", f"{name} -> {dependency}"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "image" in service:
            assert re.search(r":v?\d+\.\d+\.\d+", service["image"]), f"{name} image not pinned: {service['image']}"


def test_workspace_members_are_the_services(compose: dict[str, Any]) -> None:
    import tomllib

    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    members = set(root["tool"]["uv"]["workspace"]["members"])
    assert members == OUR_SERVICES | {"common"}
    for member in members:
        for needed in ("pyproject.toml", ".gitignore", "src", "tests"):
            assert (REPO_ROOT / member / needed).exists(), f"{member}/{needed} missing"


def test_volumes_are_declared_and_images_read_only_where_only_read(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in declared, f"{name} uses undeclared volume {source}"
            else:
                assert (REPO_ROOT / source).exists(), f"{name} mounts missing {source}"
    for reader in ("embedding", "app"):
        assert "images:/data/images:ro" in compose["services"][reader]["volumes"]
    assert "images:/data/images" in compose["services"]["downloader"]["volumes"]
    # The URL file's folder is mounted, not the file (editors save by renaming a new file).
    assert "./downloader:/data/urls:ro" in compose["services"]["downloader"]["volumes"]
    assert compose["services"]["downloader"]["environment"]["URLS_FILE"] == "/data/urls/image_urls.txt"
    assert (REPO_ROOT / "downloader" / "image_urls.txt").exists()


def test_app_is_published_on_8501_and_secrets_are_required(compose: dict[str, Any]) -> None:
    assert any(str(port).endswith(":8501") for port in compose["services"]["app"]["ports"])
    text = COMPOSE.read_text()
    for secret in ("RABBITMQ_PASSWORD", "QDRANT_API_KEY"):
        assert f"${{{secret}:?" in text, f"{secret} must be required, with no default"
    assert "guest" not in text


def test_every_variable_compose_reads_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", COMPOSE.read_text()))
    assert used - documented == set()


def test_gpu_override_reserves_an_nvidia_gpu_for_embedding() -> None:
    override = load(GPU_OVERRIDE)["services"]["embedding"]
    device = override["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert override["environment"]["DEVICE"] == "cuda"


def test_the_lock_file_pins_the_torch_the_tests_run_on() -> None:
    import tomllib

    pins = set((REPO_ROOT / "constraints.txt").read_text().split())
    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert set(root["tool"]["uv"]["constraint-dependencies"]) == pins
    locked = {p["name"]: p["version"] for p in tomllib.loads((REPO_ROOT / "uv.lock").read_text())["package"]}
    for pin in pins:
        name, version = pin.split("==")
        assert locked[name] == version, f"uv.lock has {name} {locked[name]}, tests run {version}"


def _settings_class(service: str) -> type[BaseSettings]:
    module_name, class_name = SETTINGS_CLASSES[service].split(":")
    return getattr(importlib.import_module(module_name), class_name)  # type: ignore[no-any-return]


SETTINGS_CLASSES = {
    "downloader": "downloader.settings:DownloaderSettings",
    "indexer": "indexer.settings:IndexerSettings",
    "embedding": "embedding.settings:EmbeddingSettings",
    "app": "search_app.settings:AppSettings",
}


@pytest.mark.parametrize("service", sorted(OUR_SERVICES))
def test_each_service_starts_with_the_settings_compose_gives_it(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable compose sets is one the service reads (no typos), and together with the
    defaults they pass the service's own validation in production mode."""
    environment = service_environment(service)
    settings_class = _settings_class(service)
    assert set(environment) - variable_names(settings_class) == set(), f"compose sets variables {service} does not read"
    settings = settings_as_compose_gives(settings_class, environment, monkeypatch)
    assert settings.environment == "production"


@pytest.mark.parametrize("service", sorted(OUR_SERVICES))
def test_env_example_documents_every_setting_a_service_reads(service: str) -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    missing = variable_names(_settings_class(service)) - documented
    assert missing == set(), f".env.example does not document {sorted(missing)}"


# The clients each service builds from its settings (the embedding service builds none of them).
CLIENTS = {
    "downloader": {"rabbitmq"},
    "indexer": {"rabbitmq", "qdrant", "embedding"},
    "app": {"rabbitmq", "qdrant", "embedding"},
    "embedding": set(),
}


async def _amqp_connection_target(url: str) -> tuple[str | None, int | None, str | None, str | None, str]:
    """Where aiormq (under aio-pika) would connect for ``url``: built, never connected."""
    connection = aiormq.Connection(url)
    return connection.url.host, connection.url.port, connection.url.user, connection.url.password, connection.vhost


@pytest.mark.parametrize("service", sorted(OUR_SERVICES))
def test_the_clients_built_from_compose_values_reach_compose_services(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real clients, built from exactly what compose gives the service, aim at compose's services.

    RabbitMQ: aiormq's own parsing of our AMQP URL. Embedding: the real httpx client's request URL.
    Qdrant: the real qdrant-client talks to a recording stand-in (no Qdrant server runs here; only
    host and port are pointed at the stand-in) and must speak plain HTTP with the api-key header,
    which compose's Qdrant expects (see common/tests/test_qdrant_server_contract.py for TLS and URLs).
    """
    environment = service_environment(service)
    settings = settings_as_compose_gives(_settings_class(service), environment, monkeypatch)
    built = set()
    if isinstance(settings, RabbitSettings):
        target = asyncio.run(_amqp_connection_target(amqp_url(settings)))
        assert target == ("rabbitmq", 5672, "dyimages", DUMMY_DOTENV["RABBITMQ_PASSWORD"], "/")
        built.add("rabbitmq")
    if isinstance(settings, EmbeddingClientSettings):
        with EmbeddingClient(settings.embedding_service_url, timeout=settings.embedding_timeout_s) as client:
            assert str(client._http.build_request("GET", "/info").url) == "http://embedding:8000/info"
        built.add("embedding")
    if isinstance(settings, QdrantSettings):
        assert (settings.qdrant_host, settings.qdrant_port, settings.qdrant_path) == ("qdrant", 6333, None)
        with RecordingEndpoint() as endpoint:
            pointed = settings_as_compose_gives(
                _settings_class(service),
                environment,
                monkeypatch,
                QDRANT_HOST="127.0.0.1",
                QDRANT_PORT=str(endpoint.port),
            )
            client = connect_qdrant(pointed)
            try:
                assert client.collection_exists(pointed.qdrant_collection) is True
            finally:
                client.close()
            endpoint.wait_for("/")  # qdrant-client's version check, in its own thread
        assert {(r.scheme, r.headers.get("api-key")) for r in endpoint.requests} == {
            ("http", DUMMY_DOTENV["QDRANT_API_KEY"])
        }
        built.add("qdrant")
    assert built == CLIENTS[service]
