"""docker-compose.yml as the services see it: each service's environment, interpolated like compose does.

Used by the tests that build our settings and clients from exactly what compose gives a service, so a
value that works in the tests but not in the stack (the API key that switched qdrant-client to TLS)
cannot hide behind a test-only configuration.
"""

from __future__ import annotations

import os
import re
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
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?message} against ``env``."""

    def replace(match: re.Match[str]) -> str:
        name, op, arg = match[1], match[2], match[3] or ""
        if env.get(name):
            return env[name]
        assert op != ":?", f"{name} is required"
        return arg if op == ":-" else ""

    return re.sub(r"\$\{([A-Z0-9_]+)(?:(:-|:\?)([^}]*))?\}", replace, value)


def service_environment(service: str, dotenv: dict[str, str] | None = None) -> dict[str, str]:
    """The environment compose gives ``service`` (anchors merged, ${…} interpolated against ``dotenv``)."""
    given = load_compose()["services"][service]["environment"]
    return {key: interpolate(str(value), DUMMY_DOTENV if dotenv is None else dotenv) for key, value in given.items()}


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
