"""The torch modules the ONNX export traces: each tower followed by its L2 normalisation.

Kept apart from :mod:`embedding.onnx_export` (the cache, the lock, the files) because this is the
part that must compute exactly what OpenCLIP computes: ``test_onnx_parity.py`` holds both towers
to the PyTorch backend within 1e-5. Needs PyTorch and OpenCLIP (imported inside each function, so
importing this module does not).
"""

from __future__ import annotations


def normalised(model: object, method: str) -> object:
    """``model.<method>`` (``encode_image`` or ``encode_text``) then L2 normalisation, as a torch module to export."""
    import torch

    class Tower(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, inputs: torch.Tensor) -> torch.Tensor:
            features = getattr(self.model, method)(inputs)
            return features / features.norm(dim=-1, keepdim=True)

    return Tower()


def trimmable(model: object) -> bool:
    """Whether the text tower is OpenCLIP's plain causal transformer pooled at <end_of_text> (CLIP, ViT-*)."""
    import open_clip
    from open_clip.transformer import ResidualAttentionBlock

    transformer = getattr(model, "transformer", None)
    blocks = list(getattr(transformer, "resblocks", []))
    return (
        isinstance(model, open_clip.CLIP)
        and getattr(model, "text_pool_type", None) == "argmax"
        and getattr(model, "attn_mask", None) is not None
        and getattr(transformer, "batch_first", False)
        and bool(blocks)
        and all(
            type(block) is ResidualAttentionBlock
            and not hasattr(block, "ln_1_kv")
            and block.attn._qkv_same_embed_dim
            and block.attn.in_proj_bias is not None
            for block in blocks
        )
    )


def trimmed_text_tower(model: object) -> object:
    """OpenCLIP's ``encode_text`` + L2 normalisation for token ids of any length (not only the context).

    ``encode_text`` adds the whole positional table and mask, so its export only takes 77 ids, and
    ``nn.MultiheadAttention``'s traced reshapes fix the length too. This is the same computation
    written so the length stays a dimension: the first ``n`` positions and an ``n`` x ``n`` causal
    mask, attention spelled out with the block's own weights. Since position ``i`` only sees ids
    ``<= i``, the vector read at <end_of_text> is the same for any cut after it: the runtime sends
    only that many ids (a dozen for a typical query instead of 77). Parity: test_onnx_parity.py.
    """
    import torch
    import torch.nn.functional as F
    from open_clip.transformer import text_global_pool

    def attention(attn: torch.nn.MultiheadAttention, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        q, k, v = F.linear(x, attn.in_proj_weight, attn.in_proj_bias).chunk(3, dim=-1)
        q, k, v = (t.unflatten(-1, (attn.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5) + mask
        return attn.out_proj((scores.softmax(dim=-1) @ v).transpose(1, 2).flatten(-2))

    class TrimmedText(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, tokens: torch.Tensor) -> torch.Tensor:
            m, length = self.model, tokens.shape[1]
            x = m.token_embedding(tokens) + m.positional_embedding[:length]
            mask = m.attn_mask[:length, :length]
            for block in m.transformer.resblocks:
                x = x + block.ls_1(attention(block.attn, block.ln_1(x), mask))
                x = x + block.ls_2(block.mlp(block.ln_2(x)))
            x = text_global_pool(m.ln_final(x), tokens, m.text_pool_type)
            x = m.text_projection(x) if isinstance(m.text_projection, torch.nn.Linear) else x @ m.text_projection
            return x / x.norm(dim=-1, keepdim=True)

    return TrimmedText()
