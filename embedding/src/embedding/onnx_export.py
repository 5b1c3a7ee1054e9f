"""Exporting the ONNX bundle from the OpenCLIP model (needs PyTorch); ``python -m embedding export``.

The export runs once per bundle key (:mod:`embedding.onnx_bundle`): the service does it at first
start when PyTorch is installed, and ``python -m embedding export`` does it ahead of time (a
one-shot job writing into the model volume, for an image that carries no PyTorch). The modules it
traces are in :mod:`embedding.onnx_towers`.

How it is exported (its vectors equal PyTorch's within 1e-5: embedding/tests/test_onnx_parity.py):
``torch.onnx.export`` with the TorchScript exporter (``dynamo=False``) at opset 17, a dynamic
batch axis, after turning off PyTorch's fused attention fast path (its fused op has no ONNX
form and would change the graph). Each tower includes the L2 normalisation.

The folder is built under a temporary name beside its final place, the manifest is written last,
and the folder is renamed into place: a crash leaves a temporary folder (removed on the next try),
never a half bundle under the final name. A bundle that fails its check is moved aside and rebuilt.
Concurrent exporters (several workers, or a one-shot job and the service) take a file lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

from dyimages_common.images.storage import fsync_path
from embedding.onnx_bundle import (
    IMAGE_FILE,
    TEXT_FILE,
    VOCAB_FILE,
    BundleMeta,
    bundle_dir,
    bundle_key,
    bundles_root,
    check_bundle,
    write_manifest,
)
from embedding.onnx_towers import normalised, trimmable, trimmed_text_tower
from embedding.preprocess import ImagePreprocess, UnsupportedPreprocessing
from embedding.settings import EmbeddingSettings

log = logging.getLogger(__name__)

OPSET = 17


class ExportError(RuntimeError):
    """The model cannot be exported to an ONNX bundle (unsupported tokenizer or preprocessing)."""


@contextlib.contextmanager
def _locked(root: Path, name: str) -> Iterator[None]:
    root.mkdir(parents=True, exist_ok=True)
    with (root / f".{name}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def ensure_bundle(settings: EmbeddingSettings) -> Path:
    """The bundle folder for the settings, exported now if it is missing, stale or corrupt."""
    key = bundle_key(settings)
    folder = bundle_dir(settings, key)
    root = bundles_root(settings)
    with _locked(root, folder.name):
        if folder.exists():
            problem = check_bundle(folder, key)
            if problem is None:
                return folder
            aside = root / f".broken-{folder.name}-{os.getpid()}-{time.time_ns()}"
            log.warning("the ONNX bundle at %s is unusable (%s): exporting it again", folder, problem)
            folder.rename(aside)
            shutil.rmtree(aside, ignore_errors=True)
        for stale in root.glob(f".tmp-{folder.name}-*"):  # a crashed export's leftovers
            shutil.rmtree(stale, ignore_errors=True)
        temporary = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=root))
        try:
            started = time.monotonic()
            export_into(settings, temporary)
            write_manifest(temporary, key)
            _fsync_tree(temporary)
            temporary.rename(folder)
            fsync_path(root)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
        log.info(
            "exported the ONNX bundle for %s to %s in %.1f s", settings.model_name, folder, time.monotonic() - started
        )
        return folder


def _fsync_tree(folder: Path) -> None:
    for path in folder.iterdir():
        fsync_path(path)
    fsync_path(folder)


def export_into(settings: EmbeddingSettings, folder: Path) -> None:
    """Write the two towers, the vocabulary and ``bundle.json`` into ``folder`` (no manifest)."""
    import open_clip
    import torch
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    from embedding.model import describe_model, register_model_config

    info = describe_model(settings.model_copy(update={"device": "cpu"}))
    register_model_config(settings)
    tokenizer = open_clip.get_tokenizer(settings.model_name)
    clean = getattr(getattr(tokenizer, "clean_fn", None), "__name__", "").removeprefix("_clean_")
    if (
        type(tokenizer) is not SimpleTokenizer
        or tokenizer.reduction_fn is not None
        or clean not in ("lower", "whitespace")
    ):
        raise ExportError(
            f"{settings.model_name} does not use OpenCLIP's plain SimpleTokenizer: use EMBEDDING_RUNTIME=torch"
        )
    model = open_clip.create_model(
        settings.model_name, pretrained=settings.pretrained, device="cpu", cache_dir=str(settings.model_cache_dir)
    )
    model.eval()
    preprocess = _preprocess_settings(open_clip.get_model_preprocess_cfg(model))
    torch.backends.mha.set_fastpath_enabled(False)
    size = preprocess.size
    trim = trimmable(model)
    text_tower = trimmed_text_tower(model) if trim else normalised(model, "encode_text")
    text_example = tokenizer(["a photo", "two words"])
    text_axes = {0: "batch", 1: "length"} if trim else {0: "batch"}
    towers = (
        (normalised(model, "encode_image"), torch.zeros(2, 3, size, size), "pixels", IMAGE_FILE, {0: "batch"}),
        (text_tower, text_example[:, :10] if trim else text_example, "tokens", TEXT_FILE, text_axes),
    )
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        for module, example, input_name, file, axes in towers:
            torch.onnx.export(
                module,
                (example,),
                str(folder / file),
                opset_version=OPSET,
                dynamo=False,
                input_names=[input_name],
                output_names=["vectors"],
                dynamic_axes={input_name: axes, "vectors": {0: "batch"}},
            )
    shutil.copyfile(default_bpe(), folder / VOCAB_FILE)
    meta = BundleMeta(
        model=info.model,
        pretrained=info.pretrained,
        dim=info.dim,
        context_length=int(tokenizer.context_length),
        tokenizer_clean=clean,
        preprocess=preprocess,
        trim_tokens=trim,
    )
    (folder / "bundle.json").write_text(meta.to_json())


def _preprocess_settings(config: dict) -> ImagePreprocess:
    size = config["size"]
    if isinstance(size, list | tuple):
        if len(set(size)) != 1:
            raise ExportError(f"non-square input size {size}: use EMBEDDING_RUNTIME=torch")
        size = size[0]
    if config.get("mode", "RGB") != "RGB":
        raise ExportError(f"image mode {config['mode']!r}: use EMBEDDING_RUNTIME=torch")
    try:
        return ImagePreprocess(
            size=int(size),
            mean=tuple(config["mean"]),
            std=tuple(config["std"]),
            interpolation=config.get("interpolation") or "bicubic",
            resize_mode=config.get("resize_mode") or "shortest",
        )
    except UnsupportedPreprocessing as exc:
        raise ExportError(
            f"preprocessing not supported by the ONNX runtime: {exc}; use EMBEDDING_RUNTIME=torch"
        ) from None
