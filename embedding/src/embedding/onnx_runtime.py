"""The ONNX Runtime backend: the exported towers, the NumPy tokenizer and preprocessing; no PyTorch.

On a CPU it is faster than PyTorch eager for the same graph (fused kernels, no Python between
layers): the figures are in bench/RESULTS.md. It loads a bundle (:mod:`embedding.onnx_bundle`)
that was checked whole before, and gives the same vectors as the torch backend (within 1e-5,
``embedding/tests/test_onnx_parity.py``).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import onnxruntime as ort

from embedding.onnx_bundle import IMAGE_FILE, TEXT_FILE, VOCAB_FILE, BundleMeta
from embedding.preprocess import ImagePreprocess
from embedding.tokenizer import ClipTokenizer

log = logging.getLogger(__name__)

OPTIMIZATION_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
CUDA_PROVIDER = "CUDAExecutionProvider"


def has_cuda_provider() -> bool:
    """Whether this onnxruntime build can run on CUDA (the ``onnxruntime-gpu`` package)."""
    return CUDA_PROVIDER in ort.get_available_providers()


def session_options(threads: int, optimization: str) -> ort.SessionOptions:
    """One intra-op pool of ``threads``, no inter-op pool; idle threads sleep when OMP_WAIT_POLICY=PASSIVE.

    ONNX Runtime's pool spins while it waits for work, like OpenMP's default; on a shared CPU that
    steals the cores its neighbours need, so it follows the same policy the service sets for torch.
    """
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = OPTIMIZATION_LEVELS[optimization]
    spinning = "0" if os.environ.get("OMP_WAIT_POLICY", "").upper() == "PASSIVE" else "1"
    options.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    options.log_severity_level = 3
    return options


class OnnxModel:
    """Both towers of one bundle in ONNX Runtime sessions, with the matching tokenizer and preprocessing."""

    def __init__(self, folder: Path, device: str, threads: int, optimization: str = "all") -> None:
        self.meta = BundleMeta.read(folder)
        self.preprocess: ImagePreprocess = self.meta.preprocess
        self.tokenizer = ClipTokenizer(folder / VOCAB_FILE, self.meta.context_length, self.meta.tokenizer_clean)
        if device.startswith("cuda"):
            index = int(device.partition(":")[2] or 0)
            providers: list = [(CUDA_PROVIDER, {"device_id": index}), "CPUExecutionProvider"]
        else:
            providers = ["CPUExecutionProvider"]
        options = session_options(threads, optimization)
        self.image_session = ort.InferenceSession(str(folder / IMAGE_FILE), options, providers=providers)
        self.text_session = ort.InferenceSession(str(folder / TEXT_FILE), options, providers=providers)
        log.info(
            "ONNX bundle %s loaded: providers %s, %d threads, optimisation %s",
            folder.name,
            self.image_session.get_providers(),
            threads,
            optimization,
        )

    @property
    def context_length(self) -> int:
        return self.meta.context_length

    def tokenize(self, texts: list[str]) -> list[np.ndarray]:
        return list(self.tokenizer(texts))

    def embed_images(self, items: list[np.ndarray]) -> np.ndarray:
        """Preprocessed images (each (3, H, W) float32) -> L2-normalised float32 vectors (N, dim)."""
        return self.image_session.run(None, {"pixels": np.stack(items)})[0]

    def embed_texts(self, items: list[np.ndarray]) -> np.ndarray:
        """Token ids (each (context,) int64) -> L2-normalised float32 vectors (N, dim).

        With a trimming bundle only the ids up to the longest text's <end_of_text> (the highest id,
        so argmax finds it) go in: a typical query is a dozen tokens, not 77, and the causal mask
        makes the padding after <end_of_text> invisible to it anyway.
        """
        tokens = np.stack(items)
        if self.meta.trim_tokens:
            tokens = tokens[:, : int(tokens.argmax(axis=1).max()) + 1]
        return self.text_session.run(None, {"tokens": tokens})[0]
