"""Query texts for the benchmarks: distinct, plausible, the same on every run."""

from __future__ import annotations

import itertools

import numpy as np

_COLOURS = ["red", "blue", "green", "yellow", "black", "white", "orange", "purple", "grey", "pink"]
_THINGS = ["bicycle", "cat", "dog", "car", "boat", "house", "tree", "bird", "horse", "chair", "lamp", "kite"]
_PLACES = ["on a beach", "in a forest", "in the snow", "on a street", "at sunset", "in a kitchen", "on a hill"]


def query_texts(count: int, seed: int = 7) -> list[str]:
    """``count`` distinct texts ("a red bicycle on a beach"), distinct so that no cache answers one twice."""
    texts = [f"a {c} {t} {p}" for c, t, p in itertools.product(_COLOURS, _THINGS, _PLACES)]
    if count > len(texts):
        raise ValueError(f"at most {len(texts)} distinct queries")
    order = np.random.default_rng(seed).permutation(len(texts))
    return [texts[i] for i in order[:count]]
