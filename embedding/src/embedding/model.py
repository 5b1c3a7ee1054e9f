"""Building the OpenCLIP model once per worker, and running it: normalised text and image vectors.

The service's vectors must equal OpenCLIP's own pipeline (``create_model_and_transforms`` +
``encode_image``/``encode_text`` + L2 normalisation), so everything here is OpenCLIP's code: its
model, its eval preprocessing transform and its tokenizer. Only batching and the dtype move.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from dyimages_common.embeddings.wire import ModelInfo
from embedding.onnx_towers import trimmable
from embedding.settings import EmbeddingSettings, ModelConfigError
from embedding.text_trim import encode_text_trimmed

__all__ = ["LoadedModel", "ModelConfigError", "describe_model", "register_model_config", "resolve_device"]

log = logging.getLogger(__name__)

_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def register_model_config(settings: EmbeddingSettings) -> None:
    """Register MODEL_CONFIG with OpenCLIP (in every process that builds or describes the model)."""
    if settings.model_config_file is not None:
        if not settings.model_config_file.is_file():
            raise ModelConfigError(f"MODEL_CONFIG={str(settings.model_config_file)!r}: no such file")
        open_clip.add_model_config(settings.model_config_file)


def resolve_device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ModelConfigError("DEVICE='cuda' but torch sees no CUDA device")
    return setting


def resolve_precision(setting: str, device: str) -> str:
    """fp32 on CPU (half precision is slow there); fp16 on CUDA unless told otherwise."""
    if setting == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    return setting


def describe_model(settings: EmbeddingSettings) -> ModelInfo:
    """What /info answers, from the model config alone (no weights), checked before any worker starts."""
    register_model_config(settings)
    name = settings.model_name
    config = open_clip.get_model_config(name)
    if config is None:
        raise ModelConfigError(
            f"MODEL_NAME={name!r} is not an OpenCLIP model (set MODEL_CONFIG to add one); "
            f"known: {', '.join(open_clip.list_models()[:8])}, ..."
        )
    pretrained = settings.pretrained
    known_tag = pretrained is not None and open_clip.get_pretrained_cfg(name, pretrained)
    if pretrained is not None and not known_tag and not Path(pretrained).is_file():
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(name)) or "none"
        raise ModelConfigError(f"MODEL_PRETRAINED={pretrained!r} is neither a tag of {name} ({tags}) nor a file")
    return ModelInfo(
        model=name,
        pretrained=settings.model_pretrained,
        dim=int(config["embed_dim"]),
        device=resolve_device(settings.device),
        context_length=int(config.get("text_cfg", {}).get("context_length", 77)),
    )


@dataclass
class LoadedModel:
    """One OpenCLIP model in eval mode with its eval transform and tokenizer."""

    model: Any
    preprocess: Callable[[Image.Image], torch.Tensor]
    tokenizer: Callable[[list[str]], torch.Tensor]
    device: torch.device
    dtype: torch.dtype
    # A plain CLIP text tower runs on the ids up to <end_of_text> only, as ONNX does (embedding.text_trim).
    trim_tokens: bool = False

    @classmethod
    def load(cls, settings: EmbeddingSettings, device: str) -> LoadedModel:
        """Build the model on ``device`` (``cpu`` or ``cuda:N``, as LitServe assigns it)."""
        register_model_config(settings)
        precision = resolve_precision(settings.embedding_precision, device)
        model, _, preprocess = open_clip.create_model_and_transforms(
            settings.model_name,
            pretrained=settings.pretrained,
            precision=precision,
            device=device,
            cache_dir=str(settings.model_cache_dir),
        )
        model.eval()
        tokenizer = open_clip.get_tokenizer(settings.model_name)
        log.info(
            "model %s (%s) loaded on %s in %s",
            settings.model_name,
            settings.model_pretrained,
            device,
            precision,
        )
        trim = trimmable(model)
        return cls(model, preprocess, tokenizer, torch.device(device), _DTYPES[precision], trim_tokens=trim)

    @property
    def context_length(self) -> int:
        return int(getattr(self.model, "context_length", 77))

    def tokenize(self, texts: list[str]) -> list[torch.Tensor]:
        return list(self.tokenizer(texts))

    def embed_images(self, items: list[torch.Tensor]) -> np.ndarray:
        """The :class:`embedding.runtime.Backend` call: preprocessed images -> vectors (N, dim)."""
        return self.encode_images(torch.stack(items)).numpy()

    def embed_texts(self, items: list[torch.Tensor]) -> np.ndarray:
        return self.encode_texts(torch.stack(items)).numpy()

    @torch.inference_mode()
    def encode_images(self, pixels: torch.Tensor) -> torch.Tensor:
        """Preprocessed images (N, 3, H, W) -> L2-normalised float32 vectors (N, dim) on the CPU."""
        features = self.model.encode_image(pixels.to(self.device, self.dtype, non_blocking=True))
        return _normalised(features)

    @torch.inference_mode()
    def encode_texts(self, tokens: torch.Tensor) -> torch.Tensor:
        """Token ids (N, context) -> L2-normalised float32 vectors (N, dim) on the CPU (cut after the
        longest <end_of_text> when the tower allows it: the same vectors, a fraction of the work)."""
        tokens = tokens.to(self.device, non_blocking=True)
        features = encode_text_trimmed(self.model, tokens) if self.trim_tokens else self.model.encode_text(tokens)
        return _normalised(features)


def _normalised(features: torch.Tensor) -> torch.Tensor:
    features = features.float()
    return (features / features.norm(dim=-1, keepdim=True)).cpu()
