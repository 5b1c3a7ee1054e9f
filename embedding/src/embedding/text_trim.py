"""The PyTorch text tower on token ids cut after the longest text's <end_of_text>, as the ONNX runtime runs it.

CLIP's text transformer is causal (position ``i`` attends only to ids ``<= i``) and the text's
vector is read at its <end_of_text>, so the padding after it changes nothing: running the first
``n`` ids only (``n`` = the longest text's <end_of_text> position + 1) gives the same vector for a
fraction of the work, a dozen ids for a typical query instead of 77. OpenCLIP's ``encode_text``
adds the whole positional table and so takes only full rows; :func:`encode_text_trimmed` runs
OpenCLIP's own modules (token embedding, transformer, final norm, pooling, projection) on the cut.
Only for towers :func:`embedding.onnx_towers.trimmable` accepts. Parity: test_torch_text_trim.py.
"""

from __future__ import annotations

from typing import Any

import torch
from open_clip.transformer import text_global_pool


def trimmed_length(tokens: torch.Tensor) -> int:
    """Ids up to and including the longest row's <end_of_text> (the highest id, so argmax finds it)."""
    return int(tokens.argmax(dim=-1).max()) + 1


def encode_text_trimmed(model: Any, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` (unnormalised), computed on ``tokens[:, :trimmed_length(tokens)]``."""
    tokens = tokens[:, : trimmed_length(tokens)]
    length = tokens.shape[1]
    cast = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast) + model.positional_embedding[:length].to(cast)
    x = model.transformer(x, attn_mask=model.attn_mask[:length, :length])
    x = text_global_pool(model.ln_final(x), tokens, model.text_pool_type)
    if isinstance(model.text_projection, torch.nn.Linear):
        return model.text_projection(x)
    return x @ model.text_projection
