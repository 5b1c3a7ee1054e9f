"""The app's and the CLI's settings: the shared groups plus the APP_* knobs of the UI."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from dyimages_common.settings import (
    EmbeddingClientSettings,
    MetricsSettings,
    PhotosDirSettings,
    QdrantSettings,
    RabbitSettings,
    StateDbSettings,
)


class AppSettings(
    QdrantSettings, EmbeddingClientSettings, RabbitSettings, StateDbSettings, PhotosDirSettings, MetricsSettings
):
    urls_file: Path = Field(
        Path("/data/urls/image_urls.txt"),
        description="The downloader's URL list, read (only) by `dyimages audit` and `dyimages prune`.",
    )
    app_host: str = Field("0.0.0.0", min_length=1, description="Address the UI listens on.")  # noqa: S104
    app_port: int = Field(8501, ge=1, le=65535, description="Port the UI listens on.")
    app_top_k: int = Field(12, ge=1, le=200, description="Results a new query shows (UI and CLI default).")
    app_max_top_k: int = Field(100, ge=1, le=1000, description="Upper bound of the UI's top-k control.")
    app_page_size: int = Field(12, ge=1, le=200, description="Results each 'Load more' adds.")
    app_max_results: int = Field(500, ge=1, le=10_000, description="Load more stops after this many results.")
    app_thumbnail_px: int = Field(256, ge=32, le=1024, description="Longest side of grid thumbnails.")
    app_preview_px: int = Field(1024, ge=128, le=4096, description="Longest side of the detail view's image.")
    app_query_cache_size: int = Field(512, ge=1, le=100_000, description="Query embeddings kept per process.")
    app_thumbnail_cache_size: int = Field(2000, ge=1, le=100_000, description="Thumbnails kept per process.")
    app_negative_weight: float = Field(
        0.5, ge=0.0, le=2.0, description="Weight of negative terms ('-people') subtracted from the query vector."
    )
    redis_url: str = Field(
        "", pattern=r"^(rediss?://.*)?$", description="Redis of the shared query cache; empty: no cache."
    )
    redis_timeout_s: float = Field(0.1, gt=0, le=5, description="Connect and read timeout of each Redis call.")
    app_results_cache_ttl_s: int = Field(300, ge=1, description="Seconds a cached page of results is kept.")

    @model_validator(mode="after")
    def _consistent_limits(self) -> AppSettings:
        if self.app_top_k > self.app_max_top_k:
            raise ValueError(f"APP_TOP_K ({self.app_top_k}) is above APP_MAX_TOP_K ({self.app_max_top_k})")
        if self.app_max_top_k > self.app_max_results:
            raise ValueError(f"APP_MAX_TOP_K ({self.app_max_top_k}) is above APP_MAX_RESULTS ({self.app_max_results})")
        return self
