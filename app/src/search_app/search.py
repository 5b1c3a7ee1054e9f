"""Searching the index: query parsing, vector arithmetic, payload filters and paging.

Plain functions over a Qdrant client and an embedder, shared by the Streamlit UI, the CLI and the
query benchmark. A query is any mix of a text, an uploaded image and "more like this" on an
indexed image, minus negative texts (``beach -people -"parked cars"``). The query vector is

    normalise(mean(positive vectors) - w * mean(negative vectors))

over L2-normalised embeddings (cosine distance), which keeps the result a direction in the same
space the images live in.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import numpy as np
from qdrant_client import QdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from dyimages_common.embedding_api import EmbeddingClient, ModelIdentity
from dyimages_common.points import payload_urls, point_id
from dyimages_common.qdrant import REINDEX_HINT, collection_model

if TYPE_CHECKING:
    from search_app.query_cache import QueryCache

# A negative term: `-word` or `-"a phrase"`, at the start or after whitespace.
_NEGATIVE = re.compile(r'(?:^|(?<=\s))-(?:"([^"]+)"|(\S+))')

# What the Qdrant client raises when the server is unreachable or answers with an error.
QDRANT_ERRORS: tuple[type[BaseException], ...] = (ResponseHandlingException, UnexpectedResponse, httpx.HTTPError)


class QueryError(ValueError):
    """The query itself cannot be searched (nothing to search for, unknown image): say so to the person."""


class QdrantUnavailable(RuntimeError):
    """Qdrant cannot answer now: the server is down or the embedded folder is held by another process."""


class CollectionMissing(RuntimeError):
    """No collection yet: nothing has been indexed."""


class IndexMismatch(RuntimeError):
    """The index was built by another model than the one the embedding service runs: reindex."""


@dataclass(frozen=True)
class ParsedText:
    positive: str
    negatives: tuple[str, ...]


def parse_text(text: str) -> ParsedText:
    """Split ``beach -people -"parked cars"`` into the text to find and the texts to avoid."""
    negatives = tuple((quoted or word).strip() for quoted, word in _NEGATIVE.findall(text))
    positive = " ".join(_NEGATIVE.sub(" ", text).split())
    return ParsedText(positive=positive, negatives=tuple(n for n in negatives if n))


@dataclass(frozen=True)
class Filters:
    """Conditions on results; empty means no condition.

    Every field but ``min_score`` and ``collapse`` is a payload condition (:meth:`to_qdrant`); ``min_score``
    is the lowest cosine similarity shown (Qdrant's ``score_threshold``); ``collapse`` folds each result
    whose vector is within that cosine of a better one into it (:func:`collapse_near_duplicates`);
    ``match_words`` fuses the ranking with the query's words in the source URLs (:func:`search_vector`). All
    three are kept here so that the UI's paging signature and the result cache's key change with them like with any
    other filter.
    """

    domains: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()
    min_width: int = 0
    min_height: int = 0
    min_score: float | None = None
    collapse: float | None = None
    match_words: bool = False

    def to_qdrant(self, exclude_ids: Sequence[str] = ()) -> models.Filter | None:
        must: list[models.Condition] = []
        if self.domains:
            must.append(models.FieldCondition(key="domains", match=models.MatchAny(any=list(self.domains))))
        if self.content_types:
            must.append(models.FieldCondition(key="content_type", match=models.MatchAny(any=list(self.content_types))))
        if self.min_width > 0:
            must.append(models.FieldCondition(key="width", range=models.Range(gte=self.min_width)))
        if self.min_height > 0:
            must.append(models.FieldCondition(key="height", range=models.Range(gte=self.min_height)))
        must_not: list[models.Condition] = [models.HasIdCondition(has_id=list(exclude_ids))] if exclude_ids else []
        if not must and not must_not:
            return None
        return models.Filter(must=must or None, must_not=must_not or None)


@dataclass(frozen=True)
class Query:
    """What a person asked for. ``like`` is the sha256 of an indexed image ("more like this")."""

    text: str = ""
    image: bytes | None = None
    like: str | None = None
    filters: Filters = field(default_factory=Filters)

    @property
    def parsed(self) -> ParsedText:
        return parse_text(self.text)

    def is_empty(self) -> bool:
        return not self.parsed.positive and self.image is None and self.like is None


@dataclass(frozen=True)
class Hit:
    """One result: its score and the point's payload, converted in one place (:meth:`from_point`)."""

    rank: int
    score: float
    id: str
    sha256: str
    path: str
    url: str
    urls: list[str]
    domains: list[str]
    content_type: str
    width: int
    height: int
    bytes: int | None
    downloaded_at: str | None
    indexed_at: str | None
    model: str | None
    similar: list[str] = field(default_factory=list)  # sha256 of near-duplicates folded into this result

    @classmethod
    def from_point(cls, point: models.ScoredPoint, rank: int) -> Hit:
        payload: dict[str, Any] = point.payload or {}
        url = str(payload.get("url", ""))
        return cls(
            rank=rank,
            score=float(point.score),
            id=str(point.id),
            sha256=str(payload.get("sha256", "")),
            path=str(payload.get("path", "")),
            url=url,
            urls=payload_urls(payload),
            domains=[str(d) for d in payload.get("domains") or []],
            content_type=str(payload.get("content_type", "")),
            width=int(payload.get("width") or 0),
            height=int(payload.get("height") or 0),
            bytes=payload.get("bytes"),
            downloaded_at=payload.get("downloaded_at"),
            indexed_at=payload.get("indexed_at"),
            model=payload.get("model"),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Embedder(Protocol):
    """Turns query parts into L2-normalised vectors. The UI wraps these in its caches."""

    def text(self, text: str) -> np.ndarray: ...

    def image(self, data: bytes) -> np.ndarray: ...


class ServiceEmbedder:
    """The embedding service over HTTP, without caching (CLI, benchmark)."""

    def __init__(self, client: EmbeddingClient) -> None:
        self._client = client

    def text(self, text: str) -> np.ndarray:
        return self._client.embed_texts([text])[0]

    def image(self, data: bytes) -> np.ndarray:
        return self._client.embed_image_bytes(data)

    def answered_by(self) -> ModelIdentity | None:
        return self._client.answered_by


def _unknown() -> ModelIdentity | None:
    return None


@dataclass(frozen=True)
class CachedEmbedder:
    """An embedder made of two functions, for the UI's ``st.cache_data`` wrappers (and, to check the
    model, ``answered_by_fn``: the client's ``answered_by``)."""

    text_fn: Callable[[str], np.ndarray]
    image_fn: Callable[[bytes], np.ndarray]
    answered_by_fn: Callable[[], ModelIdentity | None] = _unknown

    def text(self, text: str) -> np.ndarray:
        return self.text_fn(text)

    def image(self, data: bytes) -> np.ndarray:
        return self.image_fn(data)

    def answered_by(self) -> ModelIdentity | None:
        return self.answered_by_fn()


def normalise(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm == 0.0 or not np.isfinite(norm):
        raise QueryError("the query cancels itself out; remove a negative term")
    return (vector / norm).astype(np.float32)


def combine(positives: Sequence[np.ndarray], negatives: Sequence[np.ndarray], negative_weight: float) -> np.ndarray:
    """normalise(mean(positives) - w * mean(negatives)); every input is normalised first."""
    if not positives:
        raise QueryError("nothing to search for: type a text, upload an image or pick an image")
    vector = np.mean([normalise(v) for v in positives], axis=0)
    if negatives and negative_weight:
        vector = vector - negative_weight * np.mean([normalise(v) for v in negatives], axis=0)
    return normalise(vector)


def stored_vector(client: QdrantClient, collection: str, sha256: str) -> np.ndarray:
    """The indexed vector of an image, for "more like this" (no embedding call needed)."""
    try:
        points = client.retrieve(collection, ids=[point_id(sha256)], with_vectors=True)
    except (*QDRANT_ERRORS, ValueError) as exc:
        explained = _explain(client, collection, exc)
        if explained is exc:
            raise
        raise explained from exc
    if not points or points[0].vector is None:
        raise QueryError(f"image {sha256[:12]}… is not in the index")
    return np.asarray(points[0].vector, dtype=np.float32)


def query_vector(
    query: Query, embedder: Embedder, client: QdrantClient, collection: str, negative_weight: float
) -> np.ndarray:
    """The combined, normalised vector of every part of the query."""
    parsed = query.parsed
    positives: list[np.ndarray] = []
    if parsed.positive:
        positives.append(embedder.text(parsed.positive))
    if query.image is not None:
        positives.append(embedder.image(query.image))
    if query.like is not None:
        positives.append(stored_vector(client, collection, query.like))
    negatives = [embedder.text(text) for text in parsed.negatives]
    return combine(positives, negatives, negative_weight)


def answered_by(embedder: Embedder) -> ModelIdentity | None:
    """The model and weights of the embedding service's latest answer, for an embedder that knows them
    (``answered_by()``, as the service's embedders do); None otherwise."""
    method = getattr(embedder, "answered_by", None)
    return method() if callable(method) else None


def check_query_model(client: QdrantClient, collection: str, answered: ModelIdentity | None) -> None:
    """Refuse a query vector of another model or other weights than the index's, even of the same size
    (its scores would be meaningless); ``answered`` None (no embedding asked) checks nothing."""
    if answered is None:
        return
    try:  # one round trip; no collection or no Qdrant: the search itself says which
        metadata = client.get_collection(collection).config.metadata or {}
    except (*QDRANT_ERRORS, ValueError):
        return
    model, weights = metadata.get("model"), metadata.get("pretrained")
    if (model is not None and model != answered.model) or (weights is not None and weights != answered.pretrained):
        size = f"{metadata['dim']}-dimensional " if metadata.get("dim") else ""
        raise IndexMismatch(
            f"the index holds {size}vectors of {model} ({weights or 'weights not recorded'}), but the embedding "
            f"service answered with {answered}. {REINDEX_HINT}"
        )


def _explain(client: QdrantClient, collection: str, exc: Exception, vector_size: int | None = None) -> Exception:
    """What a failed Qdrant call means, asked only after it failed (one round trip less per query):
    no collection yet, a collection of another vector size, Qdrant down, or the error itself."""
    model, dim = _qdrant(lambda: collection_model(client, collection))
    if dim is None:
        return CollectionMissing(f"collection {collection!r} does not exist yet")
    if vector_size is not None and dim != vector_size:
        return IndexMismatch(
            f"the index holds {dim}-dimensional vectors of {model}, but the embedding service makes "
            f"{vector_size}-dimensional ones. {REINDEX_HINT}"
        )
    if isinstance(exc, ValueError):
        return exc
    return QdrantUnavailable(f"Qdrant is not answering: {exc}")


def _qdrant(call: Callable[[], Any]) -> Any:
    try:
        return call()
    except QDRANT_ERRORS as exc:
        raise QdrantUnavailable(f"Qdrant is not answering: {exc}") from exc


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


FUSION_DEPTH = 1000  # each ranking fused holds this many: the fused order is the same on every page
MAX_WORDS = 5
MIN_WORD_CHARS = 3


def query_words(text: str) -> list[str]:
    """The words of a query's positive text worth matching in URLs: at least 3 characters, the first 5."""
    return [word for word in dict.fromkeys(text.split()) if len(word) >= MIN_WORD_CHARS][:MAX_WORDS]


def _ranking(
    client: QdrantClient,
    collection: str,
    vector: np.ndarray,
    filters: Filters,
    exclude_ids: Sequence[str],
    words: Sequence[str],
    limit: int,
    offset: int,
) -> models.QueryResponse:
    """The vector ranking alone, or (``words``) fused by reciprocal rank with, per word, the vector ranking
    of the images whose source URLs contain it (Qdrant's text match on ``urls``: file name and path)."""
    payload_filter = filters.to_qdrant(exclude_ids)
    with_vectors = filters.collapse is not None
    if not words:
        return client.query_points(
            collection,
            query=vector.tolist(),
            query_filter=payload_filter,
            score_threshold=filters.min_score,
            limit=limit,
            offset=offset,
            with_payload=True,
            with_vectors=with_vectors,
        )
    depth = max(FUSION_DEPTH, offset + limit)
    base = list(payload_filter.must or []) if payload_filter else []
    excluded = payload_filter.must_not if payload_filter else None
    prefetch = [
        models.Prefetch(query=vector.tolist(), filter=payload_filter, score_threshold=filters.min_score, limit=depth),
        *(
            models.Prefetch(
                query=vector.tolist(),
                filter=models.Filter(
                    must=[*base, models.FieldCondition(key="urls", match=models.MatchText(text=word))],
                    must_not=excluded,
                ),
                limit=depth,
            )
            for word in words
        ),
    ]
    return client.query_points(
        collection,
        prefetch=prefetch,
        query=models.FusionQuery(fusion=models.Fusion.RRF),
        limit=limit,
        offset=offset,
        with_payload=True,
        with_vectors=with_vectors,
    )


def search_vector(
    client: QdrantClient,
    collection: str,
    vector: np.ndarray,
    *,
    filters: Filters = Filters(),
    limit: int = 10,
    offset: int = 0,
    exclude_ids: Sequence[str] = (),
    words: Sequence[str] = (),
) -> list[Hit]:
    """The best ``limit`` points after ``offset`` for ``vector``, best first; none scoring below
    ``filters.min_score`` (so a page past the last strong match is empty, not filled with weak ones); with
    ``filters.collapse``, near-duplicates within the page folded into the better result. With ``words``
    the order is the reciprocal-rank fusion of :func:`_ranking` and ``score`` is the fused score (each
    ranking adds 1/(k + rank)), not a cosine; the minimum score then applies to the vector ranking."""
    try:
        response = _ranking(client, collection, vector, filters, exclude_ids, words, limit, offset)
    except (*QDRANT_ERRORS, ValueError) as exc:
        explained = _explain(client, collection, exc, vector_size=len(vector))
        if explained is exc:
            raise
        raise explained from exc
    hits = [Hit.from_point(point, rank=offset + i + 1) for i, point in enumerate(response.points)]
    if filters.collapse is None:
        return hits
    vectors = [np.asarray(point.vector, dtype=np.float32) for point in response.points]
    return collapse_near_duplicates(hits, vectors, filters.collapse)


def search(
    client: QdrantClient,
    collection: str,
    embedder: Embedder,
    query: Query,
    *,
    limit: int = 10,
    offset: int = 0,
    negative_weight: float = 0.5,
    cache: QueryCache | None = None,
) -> list[Hit]:
    """Run a query: embed its parts, combine them, search with its filters.

    "More like this" leaves the image itself out of its own results. With a ``cache``, the page
    of results comes from Redis when the same vector, filters and page were asked since the last
    image was indexed (:mod:`search_app.query_cache`); vectors are cached by the embedder.
    """
    if query.is_empty():
        raise QueryError("nothing to search for: type a text, upload an image or pick an image")
    vector = query_vector(query, embedder, client, collection, negative_weight)
    if query.parsed.positive or query.image is not None:
        check_query_model(client, collection, answered_by(embedder))
    exclude = [point_id(query.like)] if query.like else []

    words = query_words(query.parsed.positive) if query.filters.match_words else []

    def run() -> list[Hit]:
        return search_vector(
            client,
            collection,
            vector,
            filters=query.filters,
            limit=limit,
            offset=offset,
            exclude_ids=exclude,
            words=words,
        )

    if cache is None:
        return run()
    return cache.results(
        client, collection, vector, filters=query.filters, limit=limit, offset=offset, exclude_ids=exclude, compute=run
    )


def index_size(client: QdrantClient, collection: str) -> int | None:
    """Points in the collection, or None when there is no collection."""
    if not _qdrant(lambda: client.collection_exists(collection)):
        return None
    return int(_qdrant(lambda: client.count(collection, exact=True)).count)


def facet_values(client: QdrantClient, collection: str, key: str, limit: int = 50) -> list[str]:
    """Distinct values of a keyword payload field (for the filter pickers), most frequent first."""
    if not _qdrant(lambda: client.collection_exists(collection)):
        return []
    response = _qdrant(lambda: client.facet(collection, key=key, limit=limit, exact=False))
    return [str(hit.value) for hit in response.hits]
