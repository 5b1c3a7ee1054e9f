"""Which runtime runs the model (``EMBEDDING_RUNTIME``), and the one interface the API uses for both.

* ``onnx``: ONNX Runtime on the exported bundle (:mod:`embedding.onnx_runtime`); no PyTorch at run
  time. Faster on a CPU, so ``auto`` picks it there.
* ``torch``: OpenCLIP in PyTorch (:mod:`embedding.model`); ``auto`` picks it on a CUDA device unless
  onnxruntime itself can run on CUDA (``onnxruntime-gpu``).

The choice and the model description happen in the main process before any worker starts; each
worker then loads its backend. A bundle that is missing is exported by the first worker (PyTorch
must be installed for that), or ahead of time by ``python -m embedding export``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
from PIL import Image

from dyimages_common.embeddings.wire import ModelInfo
from embedding.settings import EmbeddingSettings, ModelConfigError

__all__ = ["Backend", "ModelConfigError", "Runtime", "describe", "load_backend", "resolve_runtime", "torch_installed"]

log = logging.getLogger(__name__)


class Backend(Protocol):
    """What the API needs from a runtime: per-item preprocessing and tokens, batched vectors."""

    def preprocess(self, image: Image.Image) -> Any: ...

    def tokenize(self, texts: list[str]) -> list[Any]: ...

    def embed_images(self, items: list[Any]) -> np.ndarray: ...

    def embed_texts(self, items: list[Any]) -> np.ndarray: ...


@dataclass(frozen=True)
class Runtime:
    name: Literal["onnx", "torch"]
    device: Literal["cpu", "cuda"]


def torch_installed() -> bool:
    """Whether PyTorch and OpenCLIP import here (only asked when they are needed: an export, the torch runtime)."""
    try:
        import open_clip  # noqa: F401
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _torch_sees_cuda() -> bool:
    if not torch_installed():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_runtime(settings: EmbeddingSettings) -> Runtime:
    """EMBEDDING_RUNTIME and DEVICE -> the runtime and device, or ModelConfigError saying why not."""
    from embedding.onnx_runtime import has_cuda_provider

    choice, device = settings.embedding_runtime, settings.device
    if choice == "torch" or (choice == "auto" and device != "cpu" and not has_cuda_provider() and _torch_sees_cuda()):
        if not torch_installed():
            raise ModelConfigError("EMBEDDING_RUNTIME=torch but PyTorch/OpenCLIP are not installed in this image")
        from embedding.model import resolve_device

        return Runtime("torch", "cuda" if resolve_device(device).startswith("cuda") else "cpu")
    if device == "cuda" and not has_cuda_provider():
        raise ModelConfigError(
            "DEVICE=cuda but this onnxruntime has no CUDA provider (install onnxruntime-gpu) "
            "and torch sees no CUDA device: set DEVICE=cpu or EMBEDDING_RUNTIME=torch"
        )
    return Runtime("onnx", "cuda" if device != "cpu" and has_cuda_provider() else "cpu")


def describe(settings: EmbeddingSettings, runtime: Runtime) -> ModelInfo:
    """What /info answers: from the bundle when there is one (no torch needed), else from the model config."""
    if runtime.name == "onnx":
        from embedding.onnx_bundle import BundleMeta, BundleMissing, find_bundle

        try:
            meta = BundleMeta.read(find_bundle(settings))
        except BundleMissing as exc:
            if not torch_installed():
                raise ModelConfigError(
                    f"{exc}, and PyTorch is not installed here to export it: run `python -m embedding export` "
                    "with the same MODEL_* settings and MODEL_CACHE_DIR first"
                ) from None
        else:
            return ModelInfo(
                model=meta.model,
                pretrained=meta.pretrained,
                dim=meta.dim,
                device=runtime.device,
                context_length=meta.context_length,
            )
    from embedding.model import describe_model

    info = describe_model(settings if runtime.device == "cuda" else settings.model_copy(update={"device": "cpu"}))
    return info.model_copy(update={"device": runtime.device})


def load_backend(settings: EmbeddingSettings, runtime: Runtime, device: str, threads: int) -> Backend:
    """The worker's model on ``device`` (``cpu`` or ``cuda:N``, as LitServe assigns it), warmed up."""
    backend = _load(settings, runtime, device, threads)
    # One text and one image through the model before /health says ready: the first run of a
    # session plans and allocates its memory (ONNX Runtime) or builds kernels (CUDA), which would
    # otherwise land on the first user's query after every start.
    backend.embed_texts(backend.tokenize(["warm-up"]))
    backend.embed_images([backend.preprocess(Image.new("RGB", (256, 256)))])
    return backend


def _load(settings: EmbeddingSettings, runtime: Runtime, device: str, threads: int) -> Backend:
    if runtime.name == "torch":
        import torch

        from embedding.model import LoadedModel

        torch.set_num_threads(threads)
        return LoadedModel.load(settings, device)
    from embedding.onnx_bundle import BundleMissing, find_bundle
    from embedding.onnx_runtime import OnnxModel

    try:
        folder = find_bundle(settings)
    except BundleMissing as exc:
        if not torch_installed():  # removed since the main process checked it
            raise ModelConfigError(f"{exc}: run `python -m embedding export` first") from None
        log.info("%s: exporting it from the OpenCLIP model", exc)
        from embedding.onnx_export import ensure_bundle

        folder = ensure_bundle(settings)
    return OnnxModel(folder, device, threads, settings.embedding_onnx_optimization)
