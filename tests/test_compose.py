"""Static checks of docker-compose.yml and the Dockerfiles (no Docker engine runs on this machine).

The compose file is validated against the Compose specification's JSON schema, then checked for the
practices the stack depends on: healthchecks and healthy-waits, pinned images, non-root images built
with the locked dependencies, read-only image mounts where a service only reads, and that every
setting a service reads is given by compose or has a default that works in the stack.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from testkit import REPO_ROOT

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


def test_our_services_build_from_their_dockerfiles(compose: dict[str, Any]) -> None:
    python_version = (REPO_ROOT / "common" / ".python-version").read_text().strip()
    for name in OUR_SERVICES:
        build = compose["services"][name]["build"]
        context = (REPO_ROOT / build["context"]).resolve()
        assert context == REPO_ROOT, "services build from the repository root (the workspace)"
        dockerfile = (context / build["dockerfile"]).read_text()
        package_dir = Path(build["dockerfile"]).parent
        assert (REPO_ROOT / package_dir / ".python-version").read_text().strip() == python_version
        assert f"python:{python_version}." in dockerfile, "the image runs the Python the tests run"
        assert "uv sync --frozen --no-dev --no-install-workspace" in dockerfile, "dependencies layer first"
        assert "--no-editable" in dockerfile
        assert "--mount=type=cache" in dockerfile
        users = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
        assert users, f"{name} runs as root"
        assert users[-1] not in {"root", "0"}
        assert "HEALTHCHECK" in dockerfile


def test_workspace_members_are_the_services(compose: dict[str, Any]) -> None:
    import tomllib

    root = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    members = set(root["tool"]["uv"]["workspace"]["members"])
    assert members == OUR_SERVICES | {"common"}
    for member in members:
        for needed in ("pyproject.toml", ".python-version", ".gitignore", "src", "tests"):
            assert (REPO_ROOT / member / needed).exists(), f"{member}/{needed} missing"
    for name in OUR_SERVICES:
        assert (REPO_ROOT / name / "Dockerfile").exists()


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


SETTINGS_CLASSES = {
    "downloader": "downloader.settings:DownloaderSettings",
    "indexer": "indexer.config:IndexerSettings",
    "embedding": "embedding.settings:EmbeddingSettings",
    "app": "search_app.settings:AppSettings",
}


def _interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} against ``env``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3] or ""
        if env.get(name):
            return env[name]
        assert op != ":?", f"{name} is required"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", replace, value)


@pytest.mark.parametrize("service", sorted(OUR_SERVICES))
def test_each_service_starts_with_the_settings_compose_gives_it(
    compose: dict[str, Any], service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every variable compose sets is one the service reads (no typos), and together with the
    defaults they pass the service's own validation in production mode."""
    import importlib
    import os

    from dyimages_common.settings import load_settings

    dotenv = {"RABBITMQ_PASSWORD": "a-real-secret", "QDRANT_API_KEY": "another-secret"}
    environment = {
        key: _interpolate(str(value), dotenv) for key, value in compose["services"][service]["environment"].items()
    }
    module_name, class_name = SETTINGS_CLASSES[service].split(":")
    settings_class = getattr(importlib.import_module(module_name), class_name)
    fields = {_variable(name, field) for name, field in settings_class.model_fields.items()}
    assert set(environment) - fields == set(), f"compose sets variables {service} does not read"

    for key in list(os.environ):
        if key.upper() in fields:
            monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = load_settings(settings_class)
    assert settings.environment == "production"


@pytest.mark.parametrize("service", sorted(OUR_SERVICES))
def test_env_example_documents_every_setting_a_service_reads(service: str) -> None:
    import importlib

    module_name, class_name = SETTINGS_CLASSES[service].split(":")
    settings_class = getattr(importlib.import_module(module_name), class_name)
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (REPO_ROOT / ".env.example").read_text(), re.M))
    missing = {_variable(name, field) for name, field in settings_class.model_fields.items()} - documented
    assert missing == set(), f".env.example does not document {sorted(missing)}"


def _variable(name: str, field: Any) -> str:
    """The environment variable of a settings field: its first alias choice, else its name."""
    alias = field.validation_alias
    choices = getattr(alias, "choices", None)
    return str(choices[0] if choices else alias or name).upper()
