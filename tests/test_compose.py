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
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import aiormq
import pytest
import yaml
from pydantic_settings import BaseSettings

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.messaging.rabbit import amqp_url
from dyimages_common.settings import EmbeddingClientSettings, QdrantSettings, RabbitSettings
from dyimages_common.store.qdrant.connect import connect_qdrant
from testkit import REPO_ROOT
from testkit.compose import DUMMY_DOTENV, interpolate, service_environment, settings_as_compose_gives, variable_names
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


# One-shot jobs: they run, exit, and their dependents wait for them to complete successfully.
JOBS = {"embedding-export"}


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in JOBS:
            assert service["restart"] == "no", f"{name} is a one-shot job"
            assert "healthcheck" not in service
            continue
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dependency, condition in service.get("depends_on", {}).items():
            assert dependency in compose["services"]
            expected = "service_completed_successfully" if dependency in JOBS else "service_healthy"
            assert condition["condition"] == expected, f"{name} -> {dependency}"


def test_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if "image" in service:
            assert re.search(r":v?\d+\.\d+\.\d+", service["image"]), f"{name} image not pinned: {service['image']}"


def test_workspace_members_are_the_services(compose: dict[str, Any]) -> None:
    import tomllib

    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    members = set(root["tool"]["uv"]["workspace"]["members"])
    assert members == OUR_SERVICES | {"common", "testkit", "demo", "bench"}
    for member in members:
        wanted = (
            ("pyproject.toml", "src")
            if member in {"testkit", "demo", "bench"}
            else ("pyproject.toml", ".gitignore", "src", "tests")
        )
        for needed in wanted:  # testkit, the demo and the benchmarks are tested from tests/
            assert (REPO_ROOT / member / needed).exists(), f"{member}/{needed} missing"


def test_volumes_are_declared_and_images_read_only_where_only_read(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = interpolate(volume, {}).split(":")[0]  # the default of a folder .env may name
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
    # The photo folder (PHOTOS_DIR in .env, default ./photos) is read where it lies, by every reader, never written.
    for reader in ("downloader", "embedding", "app"):
        assert "${PHOTOS_DIR:-./photos}:/data/photos:ro" in compose["services"][reader]["volumes"]
        assert compose["services"][reader]["environment"]["PHOTOS_DIR"] == "/data/photos"


def _init_env(tmp_path: Path) -> dict[str, str]:
    """The .env that ./scripts/init-env writes (run for real, in a copy)."""
    (tmp_path / "scripts").mkdir()
    shutil.copy(REPO_ROOT / "scripts" / "init-env", tmp_path / "scripts" / "init-env")
    shutil.copy(REPO_ROOT / ".env.example", tmp_path / ".env.example")
    subprocess.run([str(tmp_path / "scripts" / "init-env")], check=True, capture_output=True)
    lines = (tmp_path / ".env").read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if re.match(r"^[A-Z][A-Z0-9_]*=", line))


def _active(compose: dict[str, Any], cli_profiles: list[str], dotenv: dict[str, str]) -> dict[str, Any]:
    """The services compose runs: `--profile` flags when given, else COMPOSE_PROFILES (from .env),
    as the real CLI does (checked with it in tests/containers/stack_smoke.py)."""
    profiles = set(cli_profiles or [p for p in dotenv.get("COMPOSE_PROFILES", "").split(",") if p])
    return {
        name: service
        for name, service in compose["services"].items()
        if not service.get("profiles") or profiles & set(service["profiles"])
    }


def _ui_published(services: dict[str, Any], dotenv: dict[str, str]) -> dict[str, list[str]]:
    """Host addresses of the services that forward to the app's UI (their ports, interpolated)."""
    forwarders = {name for name, service in services.items() if "app:8501" in _forwards_to(name, service)}
    return {name: [interpolate(str(port), dotenv) for port in services[name].get("ports", [])] for name in forwarders}


def _forwards_to(name: str, service: dict[str, Any]) -> str:
    if name == "ui":
        return (REPO_ROOT / "deploy" / "direct" / "nginx.conf").read_text()
    return str(service.get("environment", {}).get("PROXY_UPSTREAM", ""))


def test_the_profiles_decide_who_publishes_the_ui(compose: dict[str, Any], tmp_path: Path) -> None:
    """`docker compose up` (COMPOSE_PROFILES=direct from the .env init-env writes): the ui pass-through
    on localhost:8501; `--profile public` replaces that list: only the proxy. The app publishes nothing."""
    dotenv = _init_env(tmp_path)
    assert dotenv["COMPOSE_PROFILES"] == "direct"
    assert "ports" not in compose["services"]["app"]
    default = _active(compose, [], dotenv)
    assert _ui_published(default, dotenv) == {"ui": ["127.0.0.1:8501:8501"]}
    public = _active(compose, ["public"], dotenv)
    assert _ui_published(public, dotenv) == {"proxy": ["80:8080", "443:8443"]}
    assert _ui_published(_active(compose, ["direct", "monitoring"], dotenv), dotenv) == {"ui": ["127.0.0.1:8501:8501"]}
    assert _ui_published(_active(compose, ["public", "monitoring"], dotenv), dotenv) == {
        "proxy": ["80:8080", "443:8443"]
    }
    assert _ui_published(default, {**dotenv, "APP_PUBLISH": "0.0.0.0:8501"}) == {"ui": ["0.0.0.0:8501:8501"]}
    # An .env from before the direct profile: compose refuses with one line saying what to add.
    assert "${COMPOSE_PROFILES?Add COMPOSE_PROFILES=direct to .env" in COMPOSE.read_text()


def test_the_ui_pass_through_is_unprivileged_read_only_and_waits_for_the_app(compose: dict[str, Any]) -> None:
    ui = compose["services"]["ui"]
    assert ui["profiles"] == ["direct"]
    assert ui["image"] == compose["services"]["proxy"]["image"], "the proxy's nginx image, nothing new to fetch"
    assert ui["user"] == "101:101"
    assert ui["read_only"] is True
    assert ui["depends_on"] == {"app": {"condition": "service_healthy"}}
    assert "./deploy/direct:/etc/dyimages/direct:ro" in ui["volumes"]
    config = (REPO_ROOT / "deploy" / "direct" / "nginx.conf").read_text()
    assert "proxy_set_header Upgrade $http_upgrade" in config, "Streamlit's websocket passes through"
    assert "client_max_body_size 0" in config, "uploads are limited by the app (MAX_IMAGE_BYTES), not nginx's 1 MB"


def test_secrets_are_required(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    for secret in ("RABBITMQ_PASSWORD", "QDRANT_API_KEY"):
        assert f"${{{secret}:?" in text, f"{secret} must be required, with no default"
    assert "guest" not in text


def test_every_variable_compose_reads_is_documented_in_env_example() -> None:
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]+)", COMPOSE.read_text()))
    assert used - documented == set()


def test_gpu_override_reserves_an_nvidia_gpu_for_embedding_on_pytorch() -> None:
    override = load(GPU_OVERRIDE)["services"]["embedding"]
    device = override["deploy"]["resources"]["reservations"]["devices"][0]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert override["environment"]["DEVICE"] == "cuda"
    assert override["environment"]["EMBEDDING_RUNTIME"] == "torch"
    assert override["build"]["args"] == {"EXTRAS": "torch"}, "the GPU image carries PyTorch with CUDA"


def test_the_embedding_service_serves_the_bundle_the_export_job_wrote(
    compose: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CPU image has no PyTorch: a one-shot job from an image with it exports the bundle into the
    model-cache volume first; both see the same model settings and folder, so the bundle's key matches."""
    from embedding.onnx_bundle import bundle_dir, bundle_key
    from embedding.settings import EmbeddingSettings

    services = compose["services"]
    job, serving = services["embedding-export"], services["embedding"]
    assert serving["depends_on"]["embedding-export"] == {"condition": "service_completed_successfully"}
    assert serving["build"]["args"] == {"MEMBER": "embedding"}, "no extras: no PyTorch in the serving image"
    assert job["build"]["args"] == {"MEMBER": "embedding", "EXTRAS": "torch"}
    assert job["build"]["target"] == serving["build"]["target"] == "embedding"
    assert job["command"][:3] == ["python", "-m", "embedding"]
    assert serving["environment"]["EMBEDDING_RUNTIME"] == "onnx"
    assert "model-cache:/models" in job["volumes"]
    assert "model-cache:/models" in serving["volumes"]
    folders = set()
    for name in ("embedding-export", "embedding"):
        settings = settings_as_compose_gives(EmbeddingSettings, service_environment(name), monkeypatch)
        assert settings.environment == "production"
        folders.add(bundle_dir(settings, bundle_key(settings)))
    assert len(folders) == 1, folders


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
