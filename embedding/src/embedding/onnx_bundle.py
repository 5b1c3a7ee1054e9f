"""The ONNX model bundle on disk: where it lives, what it is keyed by, and whether it is whole.

A bundle is one folder under ``MODEL_CACHE_DIR/onnx/``::

    image.onnx  text.onnx  bpe_simple_vocab_16e6.txt.gz  bundle.json  manifest.json

``bundle.json`` holds what the runtime needs besides the two towers (the model's name, weights,
dimension, context length, the tokenizer's and the preprocessing's settings). ``manifest.json`` is
written last and lists every other file's size and SHA-256 with the bundle's key, so a folder
without it, with other contents, or for another key is never served: it is rebuilt. The folder
is built under a temporary name and renamed into place (:mod:`embedding.onnx_export`).

The key is computed from the settings alone, the same with or without PyTorch installed (so an
image without torch finds the bundle another image exported): model name, weights (a tag, or a
checkpoint file's SHA-256), the MODEL_CONFIG file's SHA-256, and :data:`EXPORTER_VERSION`.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from embedding.preprocess import ImagePreprocess
from embedding.settings import EmbeddingSettings

# Bump when the export changes what it writes (opset, graph, files): every cached bundle is re-exported.
EXPORTER_VERSION = 2
IMAGE_FILE, TEXT_FILE, VOCAB_FILE, META_FILE, MANIFEST_FILE = (
    "image.onnx",
    "text.onnx",
    "bpe_simple_vocab_16e6.txt.gz",
    "bundle.json",
    "manifest.json",
)
CONTENT_FILES = (IMAGE_FILE, TEXT_FILE, VOCAB_FILE, META_FILE)


class BundleMissing(RuntimeError):
    """No valid bundle for these settings (never exported, or corrupt)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def bundle_key(settings: EmbeddingSettings) -> str:
    """What the bundle is exported from, as a hex digest: a change of any part exports again."""
    pretrained = settings.model_pretrained
    weights = f"file:{file_sha256(Path(pretrained))}" if Path(pretrained).is_file() else f"tag:{pretrained}"
    config = settings.model_config_file
    parts = {
        "model": settings.model_name,
        "weights": weights,
        "config": file_sha256(config) if config is not None and config.is_file() else None,
        "exporter": EXPORTER_VERSION,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def bundles_root(settings: EmbeddingSettings) -> Path:
    return settings.model_cache_dir / "onnx"


def bundle_dir(settings: EmbeddingSettings, key: str) -> Path:
    safe_name = re.sub(r"[^A-Za-z0-9._-]+", "_", settings.model_name)
    return bundles_root(settings) / f"{safe_name}-{key[:16]}"


def write_manifest(folder: Path, key: str) -> None:
    """Record every content file's size and checksum; written last, after the files are complete."""
    files = {
        name: {"bytes": (folder / name).stat().st_size, "sha256": file_sha256(folder / name)} for name in CONTENT_FILES
    }
    (folder / MANIFEST_FILE).write_text(json.dumps({"key": key, "files": files}, indent=1))


def check_bundle(folder: Path, key: str) -> str | None:
    """None if ``folder`` is a whole bundle for ``key``, else what is wrong with it."""
    manifest_path = folder / MANIFEST_FILE
    if not manifest_path.is_file():
        return "no manifest (never finished)"
    try:
        manifest = json.loads(manifest_path.read_text())
        files = manifest["files"]
    except (ValueError, KeyError, TypeError) as exc:
        return f"unreadable manifest ({exc})"
    if manifest.get("key") != key:
        return "exported for another key"
    for name in CONTENT_FILES:
        path = folder / name
        expected = files.get(name) if isinstance(files, dict) else None
        if not isinstance(expected, dict) or not path.is_file():
            return f"{name} missing"
        if path.stat().st_size != expected.get("bytes") or file_sha256(path) != expected.get("sha256"):
            return f"{name} does not match its checksum"
    return None


@dataclass(frozen=True)
class BundleMeta:
    """``bundle.json``: everything about the model the runtime needs besides the two graphs."""

    model: str
    pretrained: str
    dim: int
    context_length: int
    tokenizer_clean: str
    preprocess: ImagePreprocess
    # The text tower takes token ids cut after the longest text's <end_of_text> (see onnx_export).
    trim_tokens: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "model": self.model,
                "pretrained": self.pretrained,
                "dim": self.dim,
                "context_length": self.context_length,
                "tokenizer": {"kind": "openclip-simple", "clean": self.tokenizer_clean, "vocab": VOCAB_FILE},
                "trim_tokens": self.trim_tokens,
                "preprocess": self.preprocess.to_dict(),
            },
            indent=1,
        )

    @classmethod
    def read(cls, folder: Path) -> BundleMeta:
        data = json.loads((folder / META_FILE).read_text())
        return cls(
            model=data["model"],
            pretrained=data["pretrained"],
            dim=int(data["dim"]),
            context_length=int(data["context_length"]),
            tokenizer_clean=data["tokenizer"]["clean"],
            preprocess=ImagePreprocess.from_dict(data["preprocess"]),
            trim_tokens=bool(data.get("trim_tokens", False)),
        )


def find_bundle(settings: EmbeddingSettings) -> Path:
    """The whole bundle for these settings, or :class:`BundleMissing` saying why there is none."""
    key = bundle_key(settings)
    folder = bundle_dir(settings, key)
    if not folder.exists():
        raise BundleMissing(f"no ONNX bundle at {folder}")
    problem = check_bundle(folder, key)
    if problem is not None:
        raise BundleMissing(f"the ONNX bundle at {folder} is unusable: {problem}")
    return folder
