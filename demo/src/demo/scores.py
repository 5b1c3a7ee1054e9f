"""Retrieval scores from ranks: recall@k and mean reciprocal rank, one definition for training and benchmarks."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECALL_AT = (1, 5, 10)


def ranks_of_targets(similarity: np.ndarray, targets: Sequence[int]) -> list[int]:
    """For each query row, the 1-based rank of its target column (ties broken by column order, stably)."""
    order = np.argsort(-similarity, axis=1, kind="stable")
    return [int(np.nonzero(order[row] == target)[0][0]) + 1 for row, target in enumerate(targets)]


def retrieval_scores(ranks: Sequence[int]) -> dict[str, float]:
    """recall_at_{1,5,10} (the share of queries whose target is in the top k) and mrr."""
    values = np.asarray(ranks, dtype=np.float64)
    scores = {f"recall_at_{k}": round(float(np.mean(values <= k)), 4) for k in RECALL_AT}
    scores["mrr"] = round(float(np.mean(1.0 / values)), 4)
    return scores
