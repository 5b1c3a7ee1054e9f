"""docker-compose.yml as the services see it: each service's environment, interpolated like compose does.

Used by the tests that build our settings and clients from exactly what compose gives a service, so a
value that works in the tests but not in the stack (the API key that switched qdrant-client to TLS)
cannot hide behind a test-only configuration, and by the tests that every setting in `.env` reaches
the service that reads it. :func:`rendered` asks the real compose CLI (``docker compose config``)
when one is installed (the container smoke installs it; ``DYIMAGES_COMPOSE`` names a binary) and
otherwise renders the file here, the same way for what this file uses: anchors and merge keys,
``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}`` and ``$$``, and an environment entry without a
value, which takes the variable from ``.env`` or leaves it unset.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from pydantic_settings import BaseSettings

from testkit import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"

# What `./scripts/init-env` would write: dummy values for the secrets compose requires.
DUMMY_DOTENV = {"RABBITMQ_PASSWORD": "a-real/secret@with:symbols", "QDRANT_API_KEY": "dummy-qdrant-key"}

S = TypeVar("S", bound=BaseSettings)


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?message} and $$ against ``env``."""

    def replace(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, op, arg = match[1], match[2], match[3] or ""
        if env.get(name) or (op in ("-", "?") and name in env):
            return env[name]
        assert op not in (":?", "?"), f"{name} is required"
        return arg if op in (":-", "-") else ""

    return re.sub(r"\$\$|\$\{([A-Z0-9_]+)(?:(:-|-|:\?|\?)([^}]*))?\}", replace, value)


def _environment(given: dict[str, Any] | None, env: dict[str, str]) -> dict[str, str]:
    """A service's environment: ``KEY: value`` interpolated; ``KEY:`` (no value) from ``env`` or unset."""
    resolved = {}
    for key, value in (given or {}).items():
        if value is None:
            if key in env:
                resolved[key] = env[key]
        else:
            resolved[key] = interpolate(str(value), env)
    return resolved


def service_environment(service: str, dotenv: dict[str, str] | None = None) -> dict[str, str]:
    """The environment compose gives ``service`` (anchors merged, ${…} interpolated against ``dotenv``)."""
    given = load_compose()["services"][service].get("environment")
    return _environment(given, DUMMY_DOTENV if dotenv is None else dotenv)


def compose_binary() -> list[str] | None:
    """The real compose CLI, when this machine has one: ``DYIMAGES_COMPOSE``, ``docker compose``, or
    ``docker-compose`` (v2)."""
    named = os.environ.get("DYIMAGES_COMPOSE")
    if named:
        return [named]
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    if standalone:
        version = subprocess.run([standalone, "version"], capture_output=True, text=True, check=False)
        if version.returncode == 0 and "v1." not in version.stdout:
            return [standalone]
    return None


def rendered(dotenv: dict[str, str], files: tuple[Path, ...] = (COMPOSE,)) -> tuple[dict[str, Any], str]:
    """Every service (all profiles) as compose renders it with ``dotenv`` as `.env`, and who rendered
    it ("docker compose config" or "testkit"). Nothing of this process's environment takes part."""
    binary = compose_binary()
    if binary is None:
        assert not os.environ.get("DYIMAGES_COMPOSE_REQUIRED"), "DYIMAGES_COMPOSE_REQUIRED: no compose CLI found"
        return _rendered_here(dotenv, files), "testkit"
    with tempfile.TemporaryDirectory(prefix="dy-compose-") as folder:
        env_file = Path(folder) / ".env"
        env_file.write_text("".join(f"{key}={value}\n" for key, value in dotenv.items()))
        command = [*binary, "--project-directory", str(REPO_ROOT), "--env-file", str(env_file)]
        for file in files:
            command += ["-f", str(file)]
        clean = {key: value for key, value in os.environ.items() if key in {"PATH", "HOME", "DOCKER_CONFIG"}}
        result = subprocess.run(
            [*command, "--profile", "*", "config", "--format", "json"],
            env=clean,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)["services"], "docker compose config"


def _rendered_here(dotenv: dict[str, str], files: tuple[Path, ...]) -> dict[str, Any]:
    services: dict[str, Any] = {}
    for file in files:
        for name, service in yaml.safe_load(file.read_text())["services"].items():
            merged = services.setdefault(name, {})
            for key, value in service.items():
                if key == "environment":
                    merged["environment"] = {**merged.get("environment", {}), **_environment(value, dotenv)}
                else:
                    merged[key] = _interpolate_tree(value, dotenv)
    return services


def _interpolate_tree(value: Any, env: dict[str, str]) -> Any:
    if isinstance(value, str):
        return interpolate(value, env)
    if isinstance(value, list):
        return [_interpolate_tree(item, env) for item in value]
    if isinstance(value, dict):
        return {key: _interpolate_tree(item, env) for key, item in value.items()}
    return value


def variable_names(settings_class: type[BaseSettings]) -> set[str]:
    """The environment variable of each field: its first alias choice, else its name (upper case)."""
    names = set()
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        choices = getattr(alias, "choices", None)
        names.add(str(choices[0] if choices else alias or name).upper())
    return names


def settings_as_compose_gives(
    settings_class: type[S], environment: dict[str, str], monkeypatch: pytest.MonkeyPatch, **overrides: str
) -> S:
    """``settings_class`` loaded from ``environment`` (plus ``overrides``) and nothing else of this process's."""
    from dyimages_common.settings import load_settings

    fields = variable_names(settings_class)
    for key in list(os.environ):
        if key.upper() in fields:
            monkeypatch.delenv(key)
    for key, value in {**environment, **overrides}.items():
        monkeypatch.setenv(key, value)
    return load_settings(settings_class)
