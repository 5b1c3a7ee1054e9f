"""The ONNX bundle cache: exported once per key, a changed key exports again, a broken bundle is never served.

How the runtime and the export command behave without PyTorch: test_no_torch.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dyimages_common.embeddings.client import ModelInfo
from embedding import onnx_bundle
from embedding.onnx_bundle import MANIFEST_FILE, BundleMissing, bundle_dir, bundle_key, check_bundle, find_bundle
from embedding.onnx_export import ensure_bundle
from embedding.runtime import ModelConfigError, Runtime, describe, resolve_runtime
from embedding.settings import EmbeddingSettings
from testkit import TINY_MODEL, TINY_MODEL_CONFIG

pytestmark = pytest.mark.unit


def _settings(cache: Path, **update: object) -> EmbeddingSettings:
    values = {
        "model_name": TINY_MODEL,
        "model_pretrained": "none",
        "model_config_file": TINY_MODEL_CONFIG,
        "model_cache_dir": cache,
        "images_dir": cache,
        "device": "cpu",
        "embedding_runtime": "onnx",
    }
    return EmbeddingSettings(**{**values, **update})


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[EmbeddingSettings, Path]:
    settings = _settings(tmp_path_factory.mktemp("models"))
    return settings, ensure_bundle(settings)


def test_export_writes_a_whole_bundle_once(exported: tuple[EmbeddingSettings, Path]) -> None:
    settings, folder = exported
    assert sorted(p.name for p in folder.iterdir()) == sorted([*onnx_bundle.CONTENT_FILES, MANIFEST_FILE])
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    assert manifest["key"] == bundle_key(settings)
    stamp = (folder / MANIFEST_FILE).stat().st_mtime_ns
    assert ensure_bundle(settings) == folder
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == stamp
    assert find_bundle(settings) == folder
    meta = json.loads((folder / onnx_bundle.META_FILE).read_text())
    assert meta["preprocess"] == {
        "size": 64,
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }
    assert (meta["dim"], meta["context_length"], meta["tokenizer"]["clean"]) == (512, 77, "lower")


def test_a_changed_key_exports_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path)
    first = ensure_bundle(settings)
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"one")
    other_weights = bundle_key(settings.model_copy(update={"model_pretrained": str(checkpoint)}))
    checkpoint.write_bytes(b"two")  # same path, other contents: another key
    assert other_weights != bundle_key(settings.model_copy(update={"model_pretrained": str(checkpoint)}))
    monkeypatch.setattr(onnx_bundle, "EXPORTER_VERSION", onnx_bundle.EXPORTER_VERSION + 1)
    assert bundle_key(settings) not in first.name
    with pytest.raises(BundleMissing):
        find_bundle(settings)
    second = ensure_bundle(settings)
    assert second != first
    assert check_bundle(second, bundle_key(settings)) is None


@pytest.mark.parametrize(
    "damage",
    ["flip a byte of image.onnx", "truncate text.onnx", "no manifest", "manifest of another key", "vocab missing"],
)
def test_a_broken_bundle_is_detected_and_rebuilt(tmp_path: Path, damage: str) -> None:
    settings = _settings(tmp_path)
    folder = ensure_bundle(settings)
    good = {p.name: p.read_bytes() for p in folder.iterdir() if p.name != MANIFEST_FILE}
    if damage == "flip a byte of image.onnx":
        data = bytearray((folder / "image.onnx").read_bytes())
        data[len(data) // 2] ^= 0xFF
        (folder / "image.onnx").write_bytes(bytes(data))
    elif damage == "truncate text.onnx":
        (folder / "text.onnx").write_bytes((folder / "text.onnx").read_bytes()[:1000])
    elif damage == "no manifest":  # an export killed before it finished (and renamed by hand)
        (folder / MANIFEST_FILE).unlink()
    elif damage == "manifest of another key":
        manifest = json.loads((folder / MANIFEST_FILE).read_text())
        (folder / MANIFEST_FILE).write_text(json.dumps({**manifest, "key": "0" * 64}))
    else:
        (folder / onnx_bundle.VOCAB_FILE).unlink()
    with pytest.raises(BundleMissing):
        find_bundle(settings)  # never served
    rebuilt = ensure_bundle(settings)
    assert rebuilt == folder
    assert check_bundle(rebuilt, bundle_key(settings)) is None
    assert sorted(p.name for p in rebuilt.iterdir() if p.name != MANIFEST_FILE) == sorted(good)


def test_a_crashed_exports_leftovers_are_removed_and_never_used(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    folder = bundle_dir(settings, bundle_key(settings))
    leftover = folder.parent / f".tmp-{folder.name}-crashed"
    leftover.mkdir(parents=True)
    (leftover / "image.onnx").write_bytes(b"half")
    with pytest.raises(BundleMissing):
        find_bundle(settings)
    assert ensure_bundle(settings) == folder
    assert not leftover.exists()


def test_auto_picks_onnx_on_a_cpu_and_torch_when_asked(tmp_path: Path) -> None:
    assert resolve_runtime(_settings(tmp_path, embedding_runtime="auto")) == Runtime("onnx", "cpu")
    assert resolve_runtime(_settings(tmp_path, embedding_runtime="torch")) == Runtime("torch", "cpu")
    assert EmbeddingSettings.model_fields["embedding_runtime"].default == "auto"


def test_onnx_on_cuda_without_a_cuda_provider_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelConfigError, match="no CUDA provider"):
        resolve_runtime(_settings(tmp_path, device="cuda"))


def test_describe_reads_the_bundle(exported: tuple[EmbeddingSettings, Path]) -> None:
    settings, _ = exported
    expected = ModelInfo(model=TINY_MODEL, pretrained="none", dim=512, device="cpu", context_length=77)
    assert describe(settings, Runtime("onnx", "cpu")) == expected


def test_auto_picks_torch_on_cuda_unless_onnxruntime_can_run_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stand-ins for the hardware (no GPU here): what torch and onnxruntime would report on a CUDA machine."""
    from embedding import model, onnx_runtime, runtime

    monkeypatch.setattr(runtime, "_torch_sees_cuda", lambda: True)
    monkeypatch.setattr(model, "resolve_device", lambda setting: "cuda")
    monkeypatch.setattr(onnx_runtime, "has_cuda_provider", lambda: False)
    assert resolve_runtime(_settings(tmp_path, embedding_runtime="auto", device="auto")) == Runtime("torch", "cuda")
    monkeypatch.setattr(onnx_runtime, "has_cuda_provider", lambda: True)
    assert resolve_runtime(_settings(tmp_path, embedding_runtime="auto", device="auto")) == Runtime("onnx", "cuda")
    assert resolve_runtime(_settings(tmp_path, embedding_runtime="auto", device="cpu")) == Runtime("onnx", "cpu")
