"""Near-duplicates folded into one result ("+N similar"), within one page of results."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from search_app.search.model import Hit

NEAR_DUPLICATE_COSINE = 0.94  # clip-retrieval's threshold for "the same picture"


def collapse_near_duplicates(hits: Sequence[Hit], vectors: Sequence[np.ndarray], threshold: float) -> list[Hit]:
    """Fold each hit whose vector has a cosine of at least ``threshold`` with a better-ranked kept hit into
    the first such hit (its ``similar``); kept hits keep their rank, so the numbers say where they stood."""
    kept: list[tuple[Hit, np.ndarray]] = []
    for hit, vector in zip(hits, vectors, strict=True):
        unit = vector / (np.linalg.norm(vector) or 1.0)
        twin = next((k for k, (_, other) in enumerate(kept) if float(unit @ other) >= threshold), None)
        if twin is None:
            kept.append((hit, unit))
        else:
            kept[twin][0].similar.append(hit.sha256)
    return [hit for hit, _ in kept]
