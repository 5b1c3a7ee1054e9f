"""The point of an image in the index: its id and its payload, as one typed model (:class:`ImagePoint`).

Every reader and writer of the index goes through this model: the indexer builds the payload with
:meth:`ImagePoint.merged` (the URL merge) and :meth:`ImagePoint.to_payload`; the app, the CLI, reindex,
audit, prune, the benchmarks and the test helpers read it with :meth:`ImagePoint.from_payload`. Adding a
payload field is one edit here: a field with ``json_schema_extra={"index": ...}`` also gets its payload
index (:func:`payload_indexes`), and the store seam (:mod:`dyimages_common.store.index`) creates it.

Two fields are derived, never set: ``date`` (the photo's own date, EXIF ``DateTimeOriginal``, else when it
was downloaded: what date filters and date order use) and ``words`` (file names, URL paths and camera, for
the search's word matching through a full-text index).
"""

from __future__ import annotations

import enum
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, computed_field, model_validator

from dyimages_common.library.paths import folders_of
from dyimages_common.messaging.messages import ImageDownloaded, ImageMessage, LibraryFiles

# Fixed namespace: the same SHA-256 gives the same point id in every process, forever.
POINT_NAMESPACE = uuid.UUID("5d9b7c1e-8f4a-4c43-9a57-2f0d6f1b9e21")

REVISION_FIELD = "revision"
# Payload fields for the store's own use (write bookkeeping, the word index's text), not shown to people.
INTERNAL_FIELDS = frozenset({REVISION_FIELD, "words", "library_seq"})


class IndexKind(enum.StrEnum):
    """The kinds of payload index a field can ask for (store-neutral; the seam maps them)."""

    KEYWORD = "keyword"
    INTEGER = "integer"
    DATETIME = "datetime"
    TEXT = "text"


def _indexed(kind: IndexKind, **field_args: Any) -> Any:
    return Field(json_schema_extra={"index": kind.value}, **field_args)


def point_id(sha256: str) -> str:
    """The Qdrant point id of an image: a UUID derived from its SHA-256."""
    return str(uuid.uuid5(POINT_NAMESPACE, sha256))


def url_domain(url: str) -> str:
    """The host of a URL, lower-case and without ``www.``, for the domain filter."""
    host = (urlsplit(url).hostname or "").lower()
    return host.removeprefix("www.")


def _unique(values: Iterable[str | None]) -> list[str]:
    return list(dict.fromkeys(value for value in values if value))


def payload_urls(payload: Mapping[str, Any]) -> list[str]:
    """Every source URL of a stored payload: its ``urls`` list, or the single ``url`` of a point written
    before ``urls`` existed (the one place that fallback lives)."""
    urls = payload.get("urls") or [payload.get("url")]
    return [str(url) for url in urls if url]


class ImagePoint(BaseModel):
    """The payload of one image's point. Unknown stored keys are ignored; derived fields are recomputed."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    sha256: str = _indexed(IndexKind.KEYWORD)
    path: str = ""
    url: str = ""  # the first source URL
    urls: list[str] = Field(default_factory=list)
    domains: list[str] = _indexed(IndexKind.KEYWORD, default_factory=list)
    library_paths: list[str] = Field(default_factory=list)  # files of the photo library (PHOTOS_DIR) holding it
    library_seq: int | None = None  # the scanner's number for that list: an older list never replaces it
    content_type: str = _indexed(IndexKind.KEYWORD, default="")
    width: int = _indexed(IndexKind.INTEGER, default=0)
    height: int = _indexed(IndexKind.INTEGER, default=0)
    bytes: int | None = None
    downloaded_at: AwareDatetime | None = None
    indexed_at: AwareDatetime | None = None
    model: str | None = _indexed(IndexKind.KEYWORD, default=None)
    taken_at: AwareDatetime | None = None  # EXIF DateTimeOriginal
    camera: str | None = None  # EXIF Make + Model
    orientation: int | None = None  # EXIF Orientation (1-8)
    revision: str | None = _indexed(IndexKind.KEYWORD, default=None)  # changes on every write

    @model_validator(mode="before")
    @classmethod
    def _old_payloads(cls, data: Any) -> Any:
        """Points written before ``urls``/``domains`` existed hold one ``url``: read it as the list."""
        if isinstance(data, Mapping) and "sha256" in data:
            urls = payload_urls(data)
            data = {**data, "urls": urls, "url": urls[0] if urls else ""}
            if not data.get("domains"):
                data["domains"] = _unique(url_domain(url) for url in urls)
        return data

    @computed_field(json_schema_extra={"index": IndexKind.DATETIME.value})  # type: ignore[prop-decorator]
    @property
    def date(self) -> datetime | None:
        """The photo's own date when its EXIF says it, else when it was downloaded."""
        return self.taken_at or self.downloaded_at

    @computed_field(json_schema_extra={"index": IndexKind.KEYWORD.value})  # type: ignore[prop-decorator]
    @property
    def folders(self) -> list[str]:
        """Every folder of the library holding it, at every depth: what the folder filter matches."""
        return _unique(folder for path in self.library_paths for folder in folders_of(path))

    @property
    def has_source(self) -> bool:
        """A URL or a library file still leads to it; a point without one is removed."""
        return bool(self.urls or self.library_paths)

    @computed_field(json_schema_extra={"index": IndexKind.TEXT.value})  # type: ignore[prop-decorator]
    @property
    def words(self) -> str:
        """File names and paths of every source URL and library file, and the camera: what word matching searches."""
        paths = [unquote(urlsplit(url).path).replace("/", " ") for url in self.urls]
        paths += [path.replace("/", " ") for path in self.library_paths]
        return " ".join(_unique([*paths, self.camera])).strip()

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any] | None) -> ImagePoint:
        """The point a stored payload holds. A payload written by another tool never breaks a reader: a
        field whose value does not fit (a date that is not one, a list that is a number) reads as absent."""
        data = dict(payload or {})
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            unfit = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            return cls.model_validate({key: value for key, value in data.items() if key not in unfit})

    def to_payload(self) -> dict[str, Any]:
        """The JSON payload to store (datetimes as RFC 3339 strings, derived fields included)."""
        return self.model_dump(mode="json")

    @classmethod
    def merged(
        cls,
        existing: ImagePoint | None,
        events: Sequence[ImageMessage],
        *,
        model: str,
        indexed_at: datetime,
        revision: str,
    ) -> ImagePoint:
        """The point to write for one image: ``events`` (messages for the same sha256) merged into
        ``existing``. The same bytes reached from several URLs are one point: ``urls`` is the union in the
        order first seen (``url`` the first), ``downloaded_at`` the earliest, EXIF facts the first known.
        A library message makes ``library_paths`` its list, unless the point holds a newer one (higher
        ``seq``): the scanner's messages may arrive in any order. The result may have no source left
        (:attr:`has_source`): the writer then removes the point."""
        if not events:
            raise ValueError("a point needs at least one message")
        first = events[0]
        if any(event.sha256 != first.sha256 for event in events):
            raise ValueError("messages for different images cannot share a point")
        web = [event for event in events if isinstance(event, ImageDownloaded)]
        urls = _unique([*(existing.urls if existing else ()), *(event.url for event in web)])
        library_paths, library_seq = _library_paths(existing, [e for e in events if isinstance(e, LibraryFiles)])
        earliest = min(e.downloaded_at if isinstance(e, ImageDownloaded) else e.modified_at for e in events)

        def known(name: str) -> Any:
            values = [getattr(existing, name, None), *(getattr(event, name) for event in events)]
            return next((value for value in values if value is not None), None)

        return cls(
            sha256=first.sha256,
            path=web[0].path if web else (existing.path if existing else ""),
            url=urls[0] if urls else "",
            urls=urls,
            domains=_unique(url_domain(url) for url in urls),
            library_paths=library_paths,
            library_seq=library_seq,
            content_type=first.content_type,
            width=first.width,
            height=first.height,
            bytes=first.bytes,
            downloaded_at=(existing.downloaded_at if existing and existing.downloaded_at else earliest),
            indexed_at=indexed_at,
            model=model,
            taken_at=known("taken_at"),
            camera=known("camera"),
            orientation=known("orientation"),
            revision=revision,
        )


def _library_paths(existing: ImagePoint | None, events: Sequence[LibraryFiles]) -> tuple[list[str], int | None]:
    """The library paths after ``events``: the newest message's list, unless the point's is newer."""
    kept = (list(existing.library_paths), existing.library_seq) if existing else ([], None)
    if not events:
        return kept
    newest = max(events, key=lambda event: event.seq)
    if kept[1] is not None and kept[1] > newest.seq:
        return kept
    return list(newest.paths), newest.seq


def payload_indexes(model: type[BaseModel] = ImagePoint) -> dict[str, IndexKind]:
    """Payload field -> index kind, read from the fields' ``index`` marks (computed fields included)."""
    fields: list[tuple[str, Any]] = [(name, info.json_schema_extra) for name, info in model.model_fields.items()]
    fields += [(name, info.json_schema_extra) for name, info in model.model_computed_fields.items()]
    return {name: IndexKind(extra["index"]) for name, extra in fields if isinstance(extra, dict) and "index" in extra}
