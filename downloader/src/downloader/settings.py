"""The downloader's settings: the shared groups plus its own ``DOWNLOADER_*`` knobs."""

from __future__ import annotations

import ipaddress
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator

from dyimages_common.settings import (
    MetricsSettings,
    PhotosDirSettings,
    RabbitSettings,
    StateDbSettings,
    parse_networks,
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class DownloaderSettings(RabbitSettings, StateDbSettings, PhotosDirSettings, MetricsSettings):
    urls_file: Path = Field(Path("/data/urls/image_urls.txt"), description="One URL per line; `#` starts a comment.")
    downloader_allowed_networks: str = Field(
        "",
        description="Comma-separated CIDRs the SSRF guard lets through although they are private, "
        "loopback, ... (development and tests only). Empty: only public addresses.",
    )
    downloader_concurrency: int = Field(64, ge=1, le=4096, description="Downloads in flight, all hosts together.")
    downloader_per_host: int = Field(8, ge=1, le=1024, description="Downloads in flight to one host.")
    downloader_max_inflight_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1024 * 1024,
        description="Bytes of image bodies held at once (being read, checked or stored), all downloads "
        "together; a body larger than this is read alone.",
    )
    downloader_max_decode_bytes: int = Field(
        96 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory the decoders may use at once, estimated from each image's header; an image "
        "that needs more decodes alone. With DOWNLOADER_MAX_INFLIGHT_BYTES, the defaults keep the "
        "downloader under 512 MiB.",
    )
    downloader_connect_timeout_s: float = Field(10.0, gt=0)
    downloader_timeout_s: float = Field(60.0, gt=0, description="Whole download: every redirect hop and the body.")
    downloader_max_redirects: int = Field(5, ge=0, le=50)
    downloader_max_attempts: int = Field(5, ge=1, le=100, description="Tries per URL for transient failures.")
    downloader_retry_initial_s: float = Field(1.0, gt=0, description="First backoff; doubles, with jitter.")
    downloader_retry_max_s: float = Field(300.0, gt=0, description="Longest wait between tries (Retry-After too).")
    downloader_broker_retry_max_s: float = Field(
        10.0, gt=0, description="Longest wait between tries to reach RabbitMQ or to publish again."
    )
    downloader_poll_s: float = Field(2.0, gt=0, description="How often watch mode checks URLS_FILE for changes.")
    downloader_summary_s: float = Field(30.0, gt=0, description="How often a progress summary is logged.")
    downloader_shutdown_grace_s: float = Field(
        5.0, ge=0, description="On SIGTERM/SIGINT, how long in-flight downloads and publishes may finish."
    )
    downloader_library_poll_s: float = Field(
        2.0, gt=0, description="How often the photo folder (PHOTOS_DIR) is looked at again, at least (stat only)."
    )
    downloader_library_settle_s: float = Field(
        2.0,
        ge=0,
        description="How long a new or changed photo's size and times must hold still before it is read "
        "(a file being copied in is left alone until the copy ends).",
    )
    downloader_library_readers: int = Field(4, ge=1, le=64, description="Library files read and hashed at once.")
    downloader_user_agent: str = Field("dyimages-downloader/0.1 (+https://github.com/dyimages)", min_length=1)

    @field_validator("downloader_allowed_networks")
    @classmethod
    def _valid_networks(cls, value: str) -> str:
        parse_networks(value)  # raises ValueError naming the bad CIDR
        return value

    @cached_property
    def allowed_networks(self) -> tuple[Network, ...]:
        return parse_networks(self.downloader_allowed_networks)
