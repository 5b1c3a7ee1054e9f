"""The store's neutral vocabulary: what a search asks (:class:`PointFilter`, :data:`Order`), what the
index answers (:class:`Found`), what a writer hands in (:class:`ImageVector`), what made a collection
(:class:`CollectionModel`) and a point as an engine returns it (:class:`Row`). No engine is imported here.

Dates are whole days in UTC: ``date_from``/``date_to`` are inclusive bounds on the payload's ``date``
(the photo's EXIF date, else its download time; see :class:`dyimages_common.store.points.ImagePoint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal

import numpy as np

from dyimages_common.messaging.messages import ImageMessage
from dyimages_common.store.errors import REINDEX_HINT, CollectionMismatchError
from dyimages_common.store.points import ImagePoint

Order = Literal["relevance", "newest", "oldest"]
FUSION_DEPTH = 1000  # each ranking fused (or re-ordered by date) holds this many: every page sees the same list


@dataclass(frozen=True)
class PointFilter:
    """Payload conditions; empty means no condition."""

    domains: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    min_width: int = 0
    min_height: int = 0
    date_from: date | None = None
    date_to: date | None = None
    exclude_ids: tuple[str, ...] = ()
    folder: str | None = None  # a folder of the photo library (``2024/summer``): photos in it or below it

    def day_range(self) -> tuple[datetime | None, datetime | None]:
        """The date bounds as instants: ``[start of date_from, start of the day after date_to)`` in UTC."""
        start = datetime.combine(self.date_from, time.min, tzinfo=UTC) if self.date_from else None
        end = datetime.combine(self.date_to + timedelta(days=1), time.min, tzinfo=UTC) if self.date_to else None
        return start, end


EVERYTHING = PointFilter()


@dataclass(frozen=True)
class Found:
    """One point the index answered with: its score (cosine, fused rank score, or 0.0 when browsing)."""

    id: str
    score: float
    point: ImagePoint
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class ImageVector:
    """One image to write: its vector and every message of this batch that names it. No vector (None): the
    stored one is kept (a library photo renamed, copied or deleted: only its sources change)."""

    sha256: str
    vector: np.ndarray | None
    events: Sequence[ImageMessage]


@dataclass(frozen=True)
class Row:
    """A point as an engine hands it back: id as a string, payload as stored, vector when asked for."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    vector: np.ndarray | None = None
    score: float = 0.0

    def found(self) -> Found:
        return Found(id=self.id, score=self.score, point=ImagePoint.from_payload(self.payload), vector=self.vector)


@dataclass(frozen=True)
class CollectionModel:
    """What a collection's own record says made its vectors."""

    name: str
    model: str | None
    dim: int | None
    weights: str | None

    def check(self, *, dim: int, model: str, pretrained: str | None) -> None:
        """Raise CollectionMismatchError unless vectors of (model, dim, pretrained) belong here."""
        if self.dim != dim or (self.model is not None and self.model != model):
            raise CollectionMismatchError(
                f"collection {self.name!r} holds vectors of model {self.model!r} (dim {self.dim}), "
                f"but the embedding service runs {model!r} (dim {dim}). {REINDEX_HINT}"
            )
        if pretrained is not None and self.weights is not None and self.weights != pretrained:
            raise CollectionMismatchError(
                f"collection {self.name!r} holds vectors of model {self.model!r} with weights {self.weights!r}, "
                f"but the embedding service runs it with weights {pretrained!r}. {REINDEX_HINT}"
            )

    def matches(self, *, dim: int, model: str, pretrained: str | None) -> bool:
        try:
            self.check(dim=dim, model=model, pretrained=pretrained)
        except CollectionMismatchError:
            return False
        return True

    def record(self) -> dict[str, object]:
        """The record an engine keeps with the collection (Qdrant's metadata, Edge's model file)."""
        record: dict[str, object] = {"model": self.model, "dim": self.dim}
        if self.weights is not None:
            record["pretrained"] = self.weights
        return record

    @classmethod
    def from_record(cls, name: str, record: dict[str, Any], dim: int | None) -> CollectionModel:
        model, weights = record.get("model"), record.get("pretrained")
        return cls(
            name=name,
            model=str(model) if model is not None else None,
            dim=dim,
            weights=str(weights) if weights is not None else None,
        )


def by_date(found: list[Found], order: Order) -> list[Found]:
    """``found`` re-ordered by the point's date (newest or oldest first; undated last), else as it is."""
    if order == "relevance":
        return found
    dated = [f for f in found if f.point.date is not None]
    undated = [f for f in found if f.point.date is None]
    dated.sort(key=lambda f: f.point.date, reverse=order == "newest")  # type: ignore[arg-type, return-value]
    return dated + undated
