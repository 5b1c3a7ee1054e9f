"""The ONNX bundle cache: exported once per key, a changed key exports again, a broken bundle is never served.

And the runtime needs no PyTorch: a process where ``import torch`` fails loads a bundle and embeds,
and the real service (``python -m embedding``) serves from it; without a bundle it refuses clearly.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dyimages_common.embedding_api import EmbeddingClient, ModelInfo
from embedding import onnx_bundle
from embedding.onnx_bundle import MANIFEST_FILE, BundleMissing, bundle_dir, bundle_key, check_bundle, find_bundle
from embedding.onnx_export import ensure_bundle
from embedding.runtime import ModelConfigError, Runtime, describe, resolve_runtime
from embedding.settings import EmbeddingSettings
from testkit import REPO_ROOT, TINY_MODEL, TINY_MODEL_CONFIG
from testkit.embedding import embedding_env
from testkit.procs import free_port, start_module, stop, wait_http_ok

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


# -- no PyTorch at run time ------------------------------------------------------------------------

# A package named torch that cannot be imported, first on the path: any `import torch` fails.
_NO_TORCH = "raise ImportError('PyTorch is blocked in this test: the ONNX runtime must not import it')\n"


def _blocked_torch_path(tmp_path: Path) -> Path:
    for name in ("torch", "open_clip"):
        (tmp_path / "blocked" / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / "blocked" / name / "__init__.py").write_text(_NO_TORCH)
    return tmp_path / "blocked"


def test_the_runtime_embeds_without_pytorch(exported: tuple[EmbeddingSettings, Path], tmp_path: Path) -> None:
    _, folder = exported
    script = textwrap.dedent(
        f"""
        import sys
        from PIL import Image
        from embedding.onnx_runtime import OnnxModel
        from testkit.images import make_image
        model = OnnxModel(__import__("pathlib").Path({str(folder)!r}), "cpu", threads=1)
        texts = model.embed_texts(model.tokenize(["a cat", "a dog"]))
        images = model.embed_images([model.preprocess(make_image(i, (90, 70))) for i in range(3)])
        assert texts.shape == (2, 512) and images.shape == (3, 512), (texts.shape, images.shape)
        assert not any(name.split(".")[0] in ("torch", "open_clip", "torchvision") for name in sys.modules)
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": f"{_blocked_torch_path(tmp_path)}:{REPO_ROOT}"}
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.integration
def test_the_service_serves_a_bundle_without_pytorch_and_refuses_without_one(
    exported: tuple[EmbeddingSettings, Path], tmp_path: Path
) -> None:
    settings, _ = exported
    blocked = {"PYTHONPATH": f"{_blocked_torch_path(tmp_path)}:{REPO_ROOT}", "EMBEDDING_RUNTIME": "auto"}
    port = free_port()
    env = embedding_env(tmp_path, port, MODEL_CACHE_DIR=str(settings.model_cache_dir), **blocked)
    process = start_module("embedding", env=env, log_path=tmp_path / "service.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", timeout=180, process=process)
        with EmbeddingClient(f"http://127.0.0.1:{port}", timeout=120) as client:
            vectors = client.embed_texts(["a cat", "a dog"])
        assert vectors.shape == (2, 512)
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    finally:
        stop(process)
    env = embedding_env(tmp_path, free_port(), MODEL_CACHE_DIR=str(tmp_path / "empty"), **blocked)
    refused = subprocess.run(
        [sys.executable, "-m", "embedding"], env={**os.environ, **env}, capture_output=True, text=True, timeout=120
    )
    assert refused.returncode == 2
    assert "no ONNX bundle" in refused.stderr
    assert "python -m embedding.onnx_export" in refused.stderr


def test_describe_reads_the_bundle(exported: tuple[EmbeddingSettings, Path]) -> None:
    settings, _ = exported
    expected = ModelInfo(model=TINY_MODEL, pretrained="none", dim=512, device="cpu", context_length=77)
    assert describe(settings, Runtime("onnx", "cpu")) == expected


def test_the_export_command_exports_once_then_exits_at_once(tmp_path: Path) -> None:
    env = {
        **os.environ,
        **embedding_env(tmp_path, free_port(), MODEL_CACHE_DIR=str(tmp_path / "models")),
        "PYTHONPATH": str(REPO_ROOT),
    }
    command = [sys.executable, "-m", "embedding.onnx_export"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (folder,) = (tmp_path / "models" / "onnx").glob(f"{TINY_MODEL}-*")
    stamp = (folder / MANIFEST_FILE).stat().st_mtime_ns
    second = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == stamp  # found whole: not exported again
    bad = subprocess.run(command, env={**env, "MODEL_NAME": "no-such-model"}, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "no-such-model" in bad.stderr


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
