"""The embedding service's settings (environment variables).

The model knobs keep the unprefixed names every service shares (``MODEL_NAME``, ``MODEL_PRETRAINED``,
``MODEL_CONFIG``, ``MODEL_CACHE_DIR``, ``DEVICE``); the service's own knobs carry ``EMBEDDING_``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, field_validator

from dyimages_common.settings import EmbeddingTimeoutSettings, ImagesDirSettings, PhotosDirSettings


class ModelConfigError(ValueError):
    """MODEL_NAME / MODEL_CONFIG / MODEL_PRETRAINED / DEVICE / EMBEDDING_RUNTIME name something that cannot run."""


class EmbeddingSettings(ImagesDirSettings, PhotosDirSettings, EmbeddingTimeoutSettings):
    model_name: str = Field("ViT-B-32", min_length=1, description="OpenCLIP architecture name.")
    model_pretrained: str = Field(
        "laion2b_s34b_b79k",
        min_length=1,
        description="OpenCLIP pretrained tag, a local checkpoint file, or `none` for random weights.",
    )
    # `model_config` is pydantic's own attribute, hence the alias.
    model_config_file: Path | None = Field(
        None,
        validation_alias=AliasChoices("MODEL_CONFIG", "model_config_file"),
        description="An extra OpenCLIP model config JSON, registered before the model is built "
        "(its file name without .json is the model name).",
    )
    model_cache_dir: Path = Field(Path("/models"), description="Where downloaded weights are kept.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="auto picks CUDA when present.")

    embedding_host: Literal["0.0.0.0", "127.0.0.1", "::"] = "0.0.0.0"  # noqa: S104 - containers publish it
    embedding_port: int = Field(8000, ge=1024, le=65535, description="LitServe refuses ports below 1024.")
    embedding_workers: int = Field(1, ge=1, le=64, description="Model processes per device.")
    embedding_api_servers: int = Field(1, ge=1, le=64, description="HTTP server processes.")
    embedding_max_batch_size: int = Field(32, ge=1, le=4096, description="Most items in one forward pass.")
    embedding_batch_timeout_ms: float = Field(
        0.0,
        ge=0,
        le=10_000,
        description="How long a ready batch waits for more items before it runs; 0 runs what is ready.",
    )
    embedding_max_request_bytes: int = Field(
        100 * 1024 * 1024,
        ge=1024,
        description="Largest request body (413 above); room for one base64 upload of MAX_IMAGE_BYTES.",
    )
    embedding_precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto", description="auto: fp16 on CUDA, fp32 on CPU."
    )
    embedding_runtime: Literal["auto", "onnx", "torch"] = Field(
        "auto",
        description="What runs the model: onnx (ONNX Runtime on a bundle exported once into MODEL_CACHE_DIR, "
        "no PyTorch needed at run time) or torch (OpenCLIP in PyTorch); auto: onnx on a CPU, torch on a "
        "CUDA device unless onnxruntime has its CUDA provider.",
    )
    embedding_onnx_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="ONNX Runtime graph optimisation level."
    )
    embedding_torch_threads: int = Field(
        0,
        ge=0,
        le=512,
        description="Intra-op threads of the model (torch or ONNX Runtime); 0 = one per core on CPU, 1 on a GPU.",
    )
    embedding_decode_threads: int = Field(
        0, ge=0, le=256, description="Threads decoding and preprocessing images; 0 = cores/4 on CPU, cores on a GPU."
    )
    embedding_reduced_decode: bool = Field(
        True,
        description="Decode a JPEG at the smallest DCT scale (1/2, 1/4, 1/8) whose sides are still 3 times the "
        "model's input side, not at full size (docs/architecture.md gives the cosine to the full decode's vectors).",
    )

    @field_validator("model_pretrained")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @property
    def pretrained(self) -> str | None:
        """The value for open_clip's ``pretrained`` argument: None builds random weights."""
        return None if self.model_pretrained.lower() == "none" else self.model_pretrained
