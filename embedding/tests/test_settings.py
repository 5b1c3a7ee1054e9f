"""The service's settings: defaults for compose, the shared unprefixed model names, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from dyimages_common.settings import SettingsError, load_settings
from embedding.api import thread_counts
from embedding.model import ModelConfigError, describe_model, resolve_precision
from embedding.settings import EmbeddingSettings
from testkit import TINY_MODEL, TINY_MODEL_CONFIG

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MODEL_NAME", "MODEL_PRETRAINED", "MODEL_CONFIG", "MODEL_CACHE_DIR", "DEVICE"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_serve_vit_b_32_with_laion_weights_on_port_8000() -> None:
    settings = load_settings(EmbeddingSettings)
    assert (settings.model_name, settings.model_pretrained) == ("ViT-B-32", "laion2b_s34b_b79k")
    assert (settings.embedding_host, settings.embedding_port) == ("0.0.0.0", 8000)
    assert settings.model_cache_dir == Path("/models")
    assert settings.model_config_file is None
    assert settings.device == "auto"


def test_environment_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODEL_NAME", TINY_MODEL)
    monkeypatch.setenv("MODEL_PRETRAINED", "None")
    monkeypatch.setenv("MODEL_CONFIG", str(TINY_MODEL_CONFIG))
    monkeypatch.setenv("EMBEDDING_MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("EMBEDDING_BATCH_TIMEOUT_MS", "5")
    settings = load_settings(EmbeddingSettings)
    assert settings.pretrained is None
    assert settings.model_config_file == TINY_MODEL_CONFIG
    assert (settings.embedding_max_batch_size, settings.embedding_batch_timeout_ms) == (16, 5)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("EMBEDDING_PORT", "80"),
        ("EMBEDDING_HOST", "example.com"),
        ("EMBEDDING_MAX_BATCH_SIZE", "0"),
        ("EMBEDDING_WORKERS", "many"),
        ("DEVICE", "mps"),
        ("EMBEDDING_PRECISION", "int8"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch: pytest.MonkeyPatch, variable: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=variable):
        load_settings(EmbeddingSettings)


def test_describe_model_reads_the_config_without_building_it() -> None:
    settings = load_settings(
        EmbeddingSettings, model_name=TINY_MODEL, model_pretrained="none", model_config_file=TINY_MODEL_CONFIG
    )
    info = describe_model(settings.model_copy(update={"device": "cpu"}))
    assert (info.model, info.pretrained, info.dim, info.device, info.context_length) == (
        TINY_MODEL,
        "none",
        512,
        "cpu",
        77,
    )


def test_unknown_weights_are_refused_before_start(tmp_path: Path) -> None:
    settings = load_settings(EmbeddingSettings, model_pretrained="openai-v9")
    with pytest.raises(ModelConfigError, match="MODEL_PRETRAINED='openai-v9'"):
        describe_model(settings)
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"")
    assert describe_model(load_settings(EmbeddingSettings, model_pretrained=str(checkpoint), device="cpu")).dim == 512


def test_precision_is_fp32_on_cpu_and_half_on_cuda() -> None:
    assert resolve_precision("auto", "cpu") == "fp32"
    assert resolve_precision("auto", "cuda:0") == "fp16"
    assert resolve_precision("bf16", "cuda:0") == "bf16"


def test_threads_feed_the_model_on_cpu_and_decode_on_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("embedding.api._cpu_count", lambda: 16)  # the machine's size is an input here
    settings = load_settings(EmbeddingSettings)
    assert thread_counts(settings, "cpu") == (16, 4)
    assert thread_counts(settings, "cuda:0") == (1, 16)
    fixed = load_settings(EmbeddingSettings, embedding_torch_threads=3, embedding_decode_threads=5)
    assert thread_counts(fixed, "cpu") == (3, 5)
