"""The data ``bench vectorstore`` writes and asks, the same in every process and every engine's venv: NumPy
only (the Milvus side runs in a virtual environment without the workspace).

Vectors are clustered like CLIP embeddings (unit vectors around ``CENTRES`` random centres, noise of
``SPREAD`` per dimension, then normalised), or uniform noise; one point in twelve matches the filter.
"""

from __future__ import annotations

import hashlib
import statistics
from collections.abc import Iterator

import numpy as np

COLLECTION = "images"
MODEL = "ViT-B-32"
DIM = 512
BATCH = 32  # the indexer's default INDEXER_BATCH_SIZE: points per write
CHUNK = 1000  # vectors are generated in chunks of this many, each from its own seed
TOP_K = 10
SEED = 20261201
CENTRES, SPREAD = 500, 0.35 / np.sqrt(DIM)  # clustered: 500 centres, noise norm about 0.35 of a unit vector
WIDTHS = (320, 640, 1024, 1920, 4032)  # a point's width is WIDTHS[i % 5]; height is 3/4 of it
DOMAINS = 7  # a point's URL is on site{i % 7}.example
FILTER_SITE, FILTER_MIN_WIDTH = 3, 1024
FILTER_DOMAIN = f"site{FILTER_SITE}.example"
UNSETTLED_QUERIES = 20


def _unit(block: np.ndarray) -> np.ndarray:
    return (block / np.linalg.norm(block, axis=1, keepdims=True)).astype(np.float32)


def _centres() -> np.ndarray:
    return _unit(np.random.default_rng([SEED, 2**30]).standard_normal((CENTRES, DIM)))


def vectors(count: int, kind: str) -> Iterator[np.ndarray]:
    """The first ``count`` point vectors (unit, float32), in chunks of at most CHUNK rows."""
    centres = _centres() if kind == "clustered" else None
    for chunk, first in enumerate(range(0, count, CHUNK)):
        rows, rng = min(CHUNK, count - first), np.random.default_rng([SEED, chunk])
        if centres is None:
            yield _unit(rng.standard_normal((rows, DIM)))
        else:
            yield _unit(centres[rng.integers(0, CENTRES, rows)] + SPREAD * rng.standard_normal((rows, DIM)))


def query_vectors(count: int, kind: str) -> np.ndarray:
    """Query vectors drawn like the points (near a centre when clustered), independent of them."""
    rng = np.random.default_rng([SEED, 2**31])
    if kind != "clustered":
        return _unit(rng.standard_normal((count, DIM)))
    return _unit(_centres()[rng.integers(0, CENTRES, count)] + SPREAD * rng.standard_normal((count, DIM)))


def sha_of(number: int) -> str:
    return hashlib.sha256(f"vectorstore-{number}".encode()).hexdigest()


def filter_mask(count: int) -> np.ndarray:
    """Which of the first ``count`` points the benchmark's filter matches (the exact side's filter)."""
    numbers = np.arange(count)
    return (numbers % DOMAINS == FILTER_SITE) & (np.asarray(WIDTHS)[numbers % len(WIDTHS)] >= FILTER_MIN_WIDTH)


def exact_top(count: int, wanted: np.ndarray, mask: np.ndarray | None, kind: str) -> list[set[int]]:
    """The exact top 10 point numbers of each query (cosine = dot product of unit vectors)."""
    scores = np.concatenate([block @ wanted.T for block in vectors(count, kind)])
    if mask is not None:
        scores[~mask] = -np.inf
    top = np.argpartition(-scores, TOP_K, axis=0)[:TOP_K]
    return [set(top[:, column].tolist()) for column in range(wanted.shape[0])]


def recall(found: list[list[str]], exact: list[set[int]], numbers: dict[str, int]) -> float:
    """Mean share of the exact top 10 that the store returned in its top 10."""
    return statistics.fmean(
        len({numbers[sha] for sha in hits} & truth) / len(truth) for hits, truth in zip(found, exact, strict=True)
    )


def ms_at(values: list[float], share: float) -> float:
    return round(float(np.percentile(values, share)), 3)
