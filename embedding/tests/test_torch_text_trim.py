"""The torch runtime's text vectors, computed on ids cut after <end_of_text>, equal OpenCLIP's full-length ones.

The reference is OpenCLIP's own ``encode_text`` on the 77 ids (then L2 normalisation), same model
and weights, in this process. The torch backend (``embedding.model.LoadedModel``, as the service
loads it) must take the trimmed path for a plain CLIP tower, and give the same vectors for texts
of every length in one batch and alone. Negative control: a cut one id short (the <end_of_text>
left out) is caught by the same tolerance.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from embedding.model import LoadedModel
from embedding.settings import EmbeddingSettings
from embedding.text_trim import encode_text_trimmed, trimmed_length
from testkit import TINY_MODEL, TINY_MODEL_CONFIG

pytestmark = pytest.mark.unit

ATOL = 2e-6  # fp32 rounding only (test_parity.py's tolerance)
TEXTS = [
    "",
    "a photo of a cat",
    "a small red circle at the top left on a grey background",
    " ".join(["a very long caption that goes on and on"] * 20),  # truncated: <end_of_text> at the last id
]


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> LoadedModel:
    torch.manual_seed(0)
    settings = EmbeddingSettings(
        model_name=TINY_MODEL,
        model_pretrained="none",
        model_config_file=TINY_MODEL_CONFIG,
        model_cache_dir=tmp_path_factory.mktemp("models"),
        images_dir=tmp_path_factory.mktemp("images"),
    )
    return LoadedModel.load(settings, "cpu")


def _reference(loaded: LoadedModel, texts: list[str]) -> np.ndarray:
    with torch.inference_mode():
        features = loaded.model.encode_text(loaded.tokenizer(texts)).float()
    return torch.nn.functional.normalize(features, dim=-1).numpy()


def test_the_torch_backend_trims_and_equals_openclip(loaded: LoadedModel) -> None:
    assert loaded.trim_tokens  # a plain CLIP tower: the service takes the trimmed path
    together = loaded.embed_texts(loaded.tokenize(TEXTS))
    alone = np.concatenate([loaded.embed_texts(loaded.tokenize([text])) for text in TEXTS])
    expected = _reference(loaded, TEXTS)
    np.testing.assert_allclose(together, expected, rtol=0, atol=ATOL)
    np.testing.assert_allclose(alone, expected, rtol=0, atol=ATOL)
    assert float(np.abs(expected[1] - expected[2]).max()) > 1e-3  # distinct texts, distinct vectors


def test_a_query_runs_a_dozen_ids_not_the_context(loaded: LoadedModel) -> None:
    tokens = loaded.tokenizer(["a photo of a cat"])
    assert tokens.shape[1] == 77
    assert trimmed_length(tokens) == 7  # <start_of_text>, five words, <end_of_text>
    assert trimmed_length(loaded.tokenizer(TEXTS)) == 77  # a batch is cut at its longest text


def test_a_cut_one_id_short_is_caught(loaded: LoadedModel) -> None:
    tokens = loaded.tokenizer(["a photo of a cat"])
    with torch.inference_mode():
        right = encode_text_trimmed(loaded.model, tokens)
        short = tokens[:, : trimmed_length(tokens) - 1]
        x = loaded.model.token_embedding(short) + loaded.model.positional_embedding[: short.shape[1]]
        x = loaded.model.transformer(x, attn_mask=loaded.model.attn_mask[: short.shape[1], : short.shape[1]])
        wrong = loaded.model.ln_final(x)[:, -1] @ loaded.model.text_projection  # read at the last word instead
    difference = torch.nn.functional.normalize(right, dim=-1) - torch.nn.functional.normalize(wrong, dim=-1)
    assert float(difference.abs().max()) > 100 * ATOL
