"""What the query cache keeps in Redis, and how each entry is written and read back.

Every key starts with the versioned prefix :func:`versioned_prefix`: ``dyimages:query:`` (or a test's
own), the entry format's number and a digest of the page's JSON schema. Redis outlives the app, so a
release that changes what an entry holds (a field added to :class:`~search_app.search.model.Hit`, say)
reads and writes other keys: an older entry is never read as a newer one, and expires.

An entry that still cannot be read back (written by a bug, by hand, or truncated) raises
:class:`Unreadable`; the cache counts it, deletes it and computes the answer, never a traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import numpy as np
from pydantic import Base64Bytes, BaseModel, ConfigDict, TypeAdapter, ValidationError

from dyimages_common.embeddings.client import ModelIdentity
from search_app.search.model import EVERY_FIELD, Hit

BASE_PREFIX = "dyimages:query:"
# Raised by hand when an entry's layout changes in a way the page schema's digest does not show.
ENTRY_FORMAT = 2
GENERATION = "generation"  # the counter that prune, reindex and drop bump (not versioned: every format reads it)

# A result page as Redis keeps it: every field of every hit, the store's own included (not Hit.to_json,
# which leaves those out for people), so a page from the cache equals the page it stands for.
_PAGE: TypeAdapter[list[Hit]] = TypeAdapter(list[Hit])


class Unreadable(ValueError):
    """A stored entry that cannot be read back as what its key says it holds."""


def entry_format(page: TypeAdapter[Any] = _PAGE) -> str:
    """``v<ENTRY_FORMAT>.<digest of the page's JSON schema>``: changes with any field of a stored hit."""
    schema = json.dumps(page.json_schema(mode="serialization"), sort_keys=True)
    return f"v{ENTRY_FORMAT}.{hashlib.sha256(schema.encode()).hexdigest()[:12]}"


def versioned_prefix(base: str = BASE_PREFIX) -> str:
    """``<base><entry_format()>:``: the start of every entry's key."""
    return f"{base}{entry_format()}:"


def digest(*parts: Any) -> str:
    """One key's worth of sha256 over JSON-encoded ``parts``."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def vector_bytes(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


class _StoredVector(BaseModel):
    """A query vector with the model and weights the embedding service named in the answer that made it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model: str
    pretrained: str
    vector: Base64Bytes


def encode_vector(made_by: ModelIdentity, vector: np.ndarray) -> bytes:
    encoded = base64.b64encode(vector_bytes(vector))  # Base64Bytes takes base64 in, keeps the bytes
    stored = _StoredVector(model=made_by.model, pretrained=made_by.pretrained, vector=encoded)
    return stored.model_dump_json().encode()


def decode_vector(data: bytes, made_by: ModelIdentity) -> np.ndarray:
    """The vector of an entry stored under ``made_by``'s key; Unreadable when it is not one, or when it
    names another model than its key does."""
    try:
        stored = _StoredVector.model_validate_json(data)
    except ValidationError as exc:
        raise Unreadable(f"not a stored vector: {exc.errors()[0]['msg'] if exc.errors() else exc}") from None
    if (stored.model, stored.pretrained) != (made_by.model, made_by.pretrained):
        raise Unreadable(f"a vector of {stored.model} ({stored.pretrained}) under the key of {made_by}")
    if not stored.vector or len(stored.vector) % 4:
        raise Unreadable(f"{len(stored.vector)} bytes are not a float32 vector")
    vector = np.frombuffer(stored.vector, dtype=np.float32).copy()
    if not np.all(np.isfinite(vector)):
        raise Unreadable("the stored vector is not finite")
    return vector


def encode_page(hits: list[Hit]) -> bytes:
    return _PAGE.dump_json(hits, context=EVERY_FIELD)


def decode_page(data: bytes) -> list[Hit]:
    try:
        return _PAGE.validate_json(data)
    except (ValidationError, ValueError) as exc:
        raise Unreadable(f"not a result page: {exc}") from None
