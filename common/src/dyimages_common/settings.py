"""Settings read from environment variables, one name for one thing in every service.

Each service composes the groups it needs into one class, for example::

    class IndexerSettings(RabbitSettings, QdrantSettings, EmbeddingClientSettings):
        indexer_batch_size: int = 32

and loads it with :func:`load_settings`, which turns a validation error into one line per
variable (``RABBITMQ_PORT='x': Input should be a valid integer``) so start-up fails clearly.
Defaults work for the compose stack; `.env.example` lists every variable.
"""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Passwords that must never reach production: RabbitMQ's built-in account and placeholders.
_PLACEHOLDER_SECRETS = {"", "guest", "changeme", "change-me", "password", "secret"}


class BaseServiceSettings(BaseSettings):
    """Settings every process has: environment, logging."""

    # An empty variable is an unset one: `NAME=` in .env, which compose passes on, means the default.
    model_config = SettingsConfigDict(extra="ignore", case_sensitive=False, frozen=True, env_ignore_empty=True)

    environment: Literal["development", "production"] = Field(
        "development",
        description="`production` refuses placeholder secrets (compose sets it).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["text", "json"] = "text"


class RabbitSettings(BaseServiceSettings):
    rabbitmq_host: str = "rabbitmq"
    rabbitmq_port: int = Field(5672, ge=1, le=65535)
    rabbitmq_user: str = "guest"
    rabbitmq_password: SecretStr = SecretStr("guest")
    rabbitmq_vhost: str = "/"
    rabbitmq_queue: str = Field("images.downloaded", min_length=1, max_length=200)

    @model_validator(mode="after")
    def _no_placeholder_password_in_production(self) -> RabbitSettings:
        if self.environment == "production" and self.rabbitmq_password.get_secret_value() in _PLACEHOLDER_SECRETS:
            raise ValueError("RABBITMQ_PASSWORD is a placeholder; set a real password in production")
        return self


class QdrantSettings(BaseServiceSettings):
    qdrant_host: str = "qdrant"
    qdrant_port: int = Field(6333, ge=1, le=65535)
    qdrant_https: bool = Field(
        False,
        description="Talk TLS to QDRANT_HOST:QDRANT_PORT. Off by default: compose's Qdrant serves plain HTTP "
        "on the private network (an API key alone never switches TLS on).",
    )
    qdrant_url: str | None = Field(
        None,
        pattern=r"^https?://[^/\s]+",
        description="A full URL (https://qdrant.example.com:6333); overrides QDRANT_HOST, QDRANT_PORT and "
        "QDRANT_HTTPS. Without a port, the scheme's own (80 or 443).",
    )
    qdrant_api_key: SecretStr | None = None
    qdrant_path: Path | None = Field(
        None,
        description="When set, an embedded store in this folder instead of a server (laptops, tests; one "
        "process at a time): Qdrant Edge, or qdrant-client's embedded mode (QDRANT_EMBEDDED).",
    )
    qdrant_embedded: Literal["edge", "local"] = Field(
        "edge",
        description="The engine of the QDRANT_PATH folder: edge (Qdrant Edge, Qdrant's own engine in the "
        "process) or local (qdrant-client's pure-Python embedded mode, for a folder made before Edge).",
    )
    qdrant_collection: str = Field("images", min_length=1, max_length=255)
    # A collection's layout on a distributed Qdrant server (the embedded engines have one shard, one copy).
    qdrant_shard_number: int = Field(1, ge=1, le=1024, description="At least the number of nodes.")
    qdrant_replication_factor: int = Field(1, ge=1, le=16, description="2 or more to stay up while a node restarts.")
    qdrant_write_consistency_factor: int = Field(
        1, ge=1, le=16, description="Copies that apply a write before it counts."
    )

    @model_validator(mode="after")
    def _consistency_within_replicas(self) -> QdrantSettings:
        if self.qdrant_write_consistency_factor > self.qdrant_replication_factor:
            raise ValueError(
                f"QDRANT_WRITE_CONSISTENCY_FACTOR ({self.qdrant_write_consistency_factor}) cannot exceed "
                f"QDRANT_REPLICATION_FACTOR ({self.qdrant_replication_factor}): no write could be acknowledged"
            )
        return self

    @field_validator("qdrant_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value


class EmbeddingTimeoutSettings(BaseServiceSettings):
    """The one timeout the embedding service and its clients share (see ``dyimages_common.embeddings.client``)."""

    embedding_timeout_s: float = Field(
        120.0,
        gt=0,
        description="How long a client waits for the embedding service; the service answers 504 to a request "
        "that has waited half of it for the model.",
    )


class EmbeddingClientSettings(EmbeddingTimeoutSettings):
    embedding_service_url: str = Field("http://embedding:8000", pattern=r"^https?://")


class ImagesDirSettings(BaseServiceSettings):
    images_dir: Path = Path("/data/images")
    max_image_bytes: int = Field(50 * 1024 * 1024, gt=0)
    max_image_pixels: int = Field(50_000_000, gt=0)


class PhotosDirSettings(BaseServiceSettings):
    """The photo library, indexed where it lies (``dyimages_common.library``): read-only everywhere."""

    photos_dir: Path | None = Field(
        None,
        description="A folder of photos indexed in place, never copied (compose: a read-only bind mount). "
        "Unset: no library.",
    )


class StateDbSettings(ImagesDirSettings):
    state_db: Path | None = Field(
        None,
        description="The downloader's URL state (SQLite). Default: IMAGES_DIR/.state/downloader.sqlite3",
    )

    @property
    def state_db_path(self) -> Path:
        return self.state_db or self.images_dir / ".state" / "downloader.sqlite3"


class MetricsSettings(BaseServiceSettings):
    metrics_port: int = Field(0, ge=0, le=65535, description="0 turns the /metrics endpoint off.")


def parse_networks(value: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated CIDRs ("127.0.0.1/32, ::1/128") to networks; empty gives none."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False) for part in value.split(",") if part.strip())


class SettingsError(Exception):
    """A setting is missing or wrong; the message names each variable, one per line."""


S = TypeVar("S", bound=BaseSettings)


def load_settings(cls: type[S], **overrides: object) -> S:
    try:
        return cls(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = "_".join(str(part) for part in error["loc"]).upper() or cls.__name__
            given = f"={error['input']!r}" if name and not isinstance(error["input"], dict) else ""
            if "PASSWORD" in name or "API_KEY" in name:
                given = ""
            lines.append(f"{name}{given}: {error['msg']}")
        raise SettingsError("\n".join(lines)) from None


def settings_or_exit(cls: type[S], **overrides: object) -> S:
    """Load settings for a command-line entry point; on error print one clear line and exit 2."""
    try:
        return load_settings(cls, **overrides)
    except SettingsError as exc:
        sys.stderr.write(f"configuration error: {exc}\n")
        raise SystemExit(2) from None
