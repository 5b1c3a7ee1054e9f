"""The ONNX runtime serves without PyTorch, and ``python -m embedding export`` is the one-shot export.

The CPU image carries no PyTorch, torchvision or OpenCLIP. Here they are installed, so each child
process gets a ``sitecustomize`` whose meta-path finder refuses them (``import torch`` raises
``ModuleNotFoundError`` as in that image) and writes down every attempt: the service, its HTTP
processes and its spawned model workers all start through it. The service must not even try.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.settings import load_settings
from embedding.onnx_bundle import MANIFEST_FILE
from embedding.onnx_export import ensure_bundle
from embedding.settings import EmbeddingSettings
from testkit import REPO_ROOT, TINY_MODEL, TINY_MODEL_CONFIG
from testkit.embedding import MODEL_CACHE_DIR, embedding_env
from testkit.images import jpeg
from testkit.procs import free_port, start_module, stop, wait_http_ok
from testkit.storage import store

pytestmark = pytest.mark.unit

_REFUSE_TORCH = textwrap.dedent(
    """
    import os
    import sys

    BLOCKED = {"torch", "torchvision", "open_clip"}


    class RefuseTorch:
        '''Makes PyTorch, torchvision and OpenCLIP look uninstalled, and notes who asked.'''

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] not in BLOCKED:
                return None
            with open(os.environ["DY_BLOCKED_IMPORTS"], "a") as log:
                log.write(f"{os.getpid()} {name}\\n")
            raise ModuleNotFoundError(f"No module named {name!r} (refused by the test)", name=name)


    sys.meta_path.insert(0, RefuseTorch())
    """
)


def _no_torch_env(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """Environment entries that make every Python process started with them refuse PyTorch; the attempts file."""
    folder = tmp_path / "no-torch"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(_REFUSE_TORCH)
    attempts = tmp_path / "torch-imports.txt"
    attempts.touch()
    return {"PYTHONPATH": f"{folder}:{REPO_ROOT}", "DY_BLOCKED_IMPORTS": str(attempts)}, attempts


def _service_env(tmp_path: Path, port: int, cache: Path, **extra: str) -> dict[str, str]:
    return embedding_env(tmp_path, port, MODEL_CACHE_DIR=str(cache), EMBEDDING_RUNTIME="onnx", **extra)


def _tiny_settings(cache: Path) -> EmbeddingSettings:
    return load_settings(
        EmbeddingSettings,
        model_name=TINY_MODEL,
        model_pretrained="none",
        model_config_file=TINY_MODEL_CONFIG,
        model_cache_dir=cache,
        device="cpu",
    )


@pytest.fixture(scope="module")
def bundle() -> Path:
    """The tiny model's bundle in the machine's shared test cache (exported once, here with PyTorch)."""
    return ensure_bundle(_tiny_settings(MODEL_CACHE_DIR))


def test_the_refusal_works(tmp_path: Path) -> None:
    """The negative control: under the finder, `import torch` fails and is noted."""
    blocked, attempts = _no_torch_env(tmp_path)
    script = "import torch"
    result = subprocess.run([sys.executable, "-c", script], env={**os.environ, **blocked}, capture_output=True)
    assert result.returncode == 1
    assert b"ModuleNotFoundError" in result.stderr
    assert attempts.read_text().split()[1:] == ["torch"]


@pytest.mark.integration
def test_the_onnx_service_embeds_texts_and_images_without_ever_importing_pytorch(bundle: Path, tmp_path: Path) -> None:
    blocked, attempts = _no_torch_env(tmp_path)
    port = free_port()
    env = _service_env(tmp_path, port, MODEL_CACHE_DIR, **blocked)
    path = store(tmp_path, jpeg(5, (90, 70)))
    process = start_module("embedding", env=env, log_path=tmp_path / "service.log")
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/health", timeout=180, process=process)
        with EmbeddingClient(f"http://127.0.0.1:{port}", timeout=120) as client:
            texts = client.embed_texts(["a cat on a sofa"])
            stored = client.embed_image_paths([path])
            uploaded = client.embed_image_bytes(jpeg(6, (64, 80)))
    finally:
        stop(process)
    assert texts.shape == (1, 512)
    assert stored.errors == [None]
    vectors = np.stack([stored.vectors[0], uploaded])
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert attempts.read_text() == "", f"the service tried to import PyTorch: {attempts.read_text()}"


def test_without_a_bundle_or_pytorch_the_service_says_to_run_the_export(tmp_path: Path) -> None:
    blocked, _ = _no_torch_env(tmp_path)
    env = {**os.environ, **_service_env(tmp_path, free_port(), tmp_path / "empty", **blocked)}
    refused = subprocess.run([sys.executable, "-m", "embedding"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "Traceback" not in refused.stderr
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("configuration error: no ONNX bundle at ")
    assert "run `python -m embedding export`" in last


def test_the_export_command_exports_once_then_exits_at_once(tmp_path: Path) -> None:
    env = {**os.environ, **_service_env(tmp_path, free_port(), tmp_path / "models"), "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "embedding", "export"]
    first = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    (folder,) = (tmp_path / "models" / "onnx").glob(f"{TINY_MODEL}-*")
    stamp = (folder / MANIFEST_FILE).stat().st_mtime_ns
    # Already cached counts, even where PyTorch is missing (the CPU image can check it on its own).
    blocked, attempts = _no_torch_env(tmp_path)
    second = subprocess.run(command, env={**env, **blocked}, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert (folder / MANIFEST_FILE).stat().st_mtime_ns == stamp  # found whole: not exported again
    assert attempts.read_text() == ""


def test_the_export_command_fails_in_one_line(tmp_path: Path) -> None:
    env = {**os.environ, **_service_env(tmp_path, free_port(), tmp_path / "models"), "PYTHONPATH": str(REPO_ROOT)}
    command = [sys.executable, "-m", "embedding", "export"]
    bad = subprocess.run(command, env={**env, "MODEL_NAME": "no-such-model"}, capture_output=True, text=True)
    assert (bad.returncode, bad.stderr.count("\n")) == (2, 1), bad.stderr
    assert bad.stderr.startswith("configuration error: MODEL_NAME='no-such-model'")
    blocked, _ = _no_torch_env(tmp_path)
    no_torch = subprocess.run(command, env={**env, **blocked}, capture_output=True, text=True, timeout=120)
    assert (no_torch.returncode, no_torch.stderr.count("\n")) == (1, 1), no_torch.stderr
    assert "cannot export: no ONNX bundle at" in no_torch.stderr
    assert "PyTorch/OpenCLIP are not installed" in no_torch.stderr
