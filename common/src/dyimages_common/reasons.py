"""Why something failed for good: one word per cause, the same word everywhere it is recorded.

A :class:`Reason` is what the downloader writes first in a failed URL's ``last_error``
(``"http_404: 404 Not Found"``) and uses as the ``reason`` label of
``dyimages_downloader_failed_total``; what the indexer puts in a dead letter's
``x-dyimages-reason`` header and the ``reason`` label of ``dyimages_indexer_dead_lettered_total``;
and what the embedding service says about one image it cannot embed. ``dyimages failures``, the
status page and ``dyimages retry --reason`` read them back with :meth:`Reason.parse` and show each
with its one-line :attr:`Reason.explanation`.

HTTP statuses: the common ones have a member each (``http_404``); any other status is recorded as
its class (``http_4xx``, ``http_5xx``, ``http_other``) with the status in the detail, so the metric
label stays a short fixed list. Rows recorded before that (``http_418``) still read: ``parse`` maps
them to their class, so ``dyimages retry --reason http_4xx`` fetches them again. A word this version
does not know at all reads as :attr:`Reason.UNKNOWN` (retryable with ``--reason unknown``).
"""

from __future__ import annotations

import re
from enum import StrEnum

_HTTP_WORD = re.compile(r"^http_(\d{3})$")


class Stage(StrEnum):
    """Where a failure happens, and so who records it: the downloader FETCH, ANSWER and BYTES; the embedding
    service BYTES and READ; the indexer INDEX; RabbitMQ BROKER. Lists of reasons are derived from it."""

    FETCH = "fetch"
    ANSWER = "answer"
    BYTES = "bytes"
    READ = "read"
    INDEX = "index"
    BROKER = "broker"
    NONE = "none"


class Reason(StrEnum):
    """One word per cause; each member names its :class:`Stage`, so a new one joins the lists at once."""

    stage: Stage

    def __new__(cls, word: str, stage: Stage) -> Reason:
        member = str.__new__(cls, word)
        member._value_ = word
        member.stage = stage
        return member

    # The download (downloader/fetch.py, downloader/guard.py).
    TIMEOUT = "timeout", Stage.FETCH
    CONNECTION_ERROR = "connection_error", Stage.FETCH
    DNS_ERROR = "dns_error", Stage.FETCH
    HTTP_ERROR = "http_error", Stage.FETCH
    BAD_URL = "bad_url", Stage.FETCH
    BAD_REDIRECT = "bad_redirect", Stage.FETCH
    REDIRECT_LOOP = "redirect_loop", Stage.FETCH
    TOO_MANY_REDIRECTS = "too_many_redirects", Stage.FETCH
    REFUSED_ADDRESS = "refused_address", Stage.FETCH
    # The server's answer: an HTTP status other than 200 and a redirect.
    HTTP_400 = "http_400", Stage.ANSWER
    HTTP_401 = "http_401", Stage.ANSWER
    HTTP_403 = "http_403", Stage.ANSWER
    HTTP_404 = "http_404", Stage.ANSWER
    HTTP_408 = "http_408", Stage.ANSWER
    HTTP_410 = "http_410", Stage.ANSWER
    HTTP_429 = "http_429", Stage.ANSWER
    HTTP_451 = "http_451", Stage.ANSWER
    HTTP_500 = "http_500", Stage.ANSWER
    HTTP_502 = "http_502", Stage.ANSWER
    HTTP_503 = "http_503", Stage.ANSWER
    HTTP_504 = "http_504", Stage.ANSWER
    HTTP_4XX = "http_4xx", Stage.ANSWER
    HTTP_5XX = "http_5xx", Stage.ANSWER
    HTTP_OTHER = "http_other", Stage.ANSWER
    # The bytes (dyimages_common.images.checks: the downloader's check and the embedding service's).
    TOO_LARGE = "too_large", Stage.BYTES
    NOT_AN_IMAGE = "not_an_image", Stage.BYTES
    UNSUPPORTED_FORMAT = "unsupported_format", Stage.BYTES
    TOO_COMPLEX = "too_complex", Stage.BYTES
    TOO_MANY_PIXELS = "too_many_pixels", Stage.BYTES
    CORRUPT_IMAGE = "corrupt_image", Stage.BYTES
    # One image the embedding service cannot read (besides the image checks above).
    NOT_FOUND = "not_found", Stage.READ
    UNSAFE_PATH = "unsafe_path", Stage.READ
    UNREADABLE = "unreadable", Stage.READ
    BAD_BASE64 = "bad_base64", Stage.READ
    INTERNAL_ERROR = "internal_error", Stage.READ
    # A message the indexer can never index.
    INVALID_JSON = "invalid_json", Stage.INDEX
    UNSUPPORTED_SCHEMA = "unsupported_schema", Stage.INDEX
    INVALID_MESSAGE = "invalid_message", Stage.INDEX
    EMBED_FAILED = "embed_failed", Stage.INDEX
    EMBED_REFUSED = "embed_refused", Stage.INDEX
    EMBED_SERVER_ERROR = "embed_server_error", Stage.INDEX
    EMBED_TIMEOUT = "embed_timeout", Stage.INDEX
    EMBED_CRASHED = "embed_crashed", Stage.INDEX
    # Dead-lettered by RabbitMQ itself (its x-death reason), not by a service.
    DELIVERY_LIMIT = "delivery_limit", Stage.BROKER
    REJECTED = "rejected", Stage.BROKER
    # A word this version does not know (another version recorded it), or none at all.
    UNKNOWN = "unknown", Stage.NONE

    @property
    def explanation(self) -> str:
        """One line for a person: what happened, and where it helps, what to do."""
        return EXPLANATIONS[self]

    def with_detail(self, detail: str) -> str:
        """The text a failure is recorded with (a failed URL's ``last_error``): the word, then the detail."""
        return f"{self.value}: {detail}" if detail else self.value

    @classmethod
    def for_http_status(cls, status: int) -> Reason:
        """The reason for an answer with this HTTP status (not 200, not a followed redirect)."""
        word = f"http_{status}"
        if word in cls._value2member_map_:
            return cls(word)
        if 400 <= status < 500:
            return cls.HTTP_4XX
        if 500 <= status < 600:
            return cls.HTTP_5XX
        return cls.HTTP_OTHER

    @classmethod
    def parse(cls, word: str | bytes | None) -> Reason:
        """The member a recorded word stands for: itself, an old ``http_<status>`` word's class, or UNKNOWN."""
        if isinstance(word, bytes):
            word = word.decode("utf-8", errors="replace")
        word = (word or "").strip()
        if word in cls._value2member_map_:
            return cls(word)
        status = _HTTP_WORD.match(word)
        return cls.for_http_status(int(status[1])) if status else cls.UNKNOWN

    @classmethod
    def of_error(cls, recorded: str | None) -> Reason:
        """The reason of a recorded ``"reason: detail"`` text (a failed URL's ``last_error``)."""
        return cls.parse((recorded or "").split(":", 1)[0])


EXPLANATIONS: dict[Reason, str] = {
    Reason.TIMEOUT: "no complete answer within DOWNLOADER_TIMEOUT_S (or no connection within the connect timeout)",
    Reason.CONNECTION_ERROR: "the connection to the server failed or was cut off, every try",
    Reason.DNS_ERROR: "the host name did not resolve, every try",
    Reason.HTTP_ERROR: "the HTTP exchange broke off in a way the downloader does not know, every try",
    Reason.BAD_URL: "not a URL that can be fetched",
    Reason.BAD_REDIRECT: "a redirect without a usable Location, or to something other than http(s)",
    Reason.REDIRECT_LOOP: "the redirects lead back to a URL already visited",
    Reason.TOO_MANY_REDIRECTS: "more redirects than DOWNLOADER_MAX_REDIRECTS",
    Reason.REFUSED_ADDRESS: (
        "the host is a private, loopback or otherwise non-public address (SSRF guard); "
        "DOWNLOADER_ALLOWED_NETWORKS can let its range through"
    ),
    Reason.HTTP_400: "the server answered 400 Bad Request",
    Reason.HTTP_401: "the server answered 401 Unauthorized: the image needs a login",
    Reason.HTTP_403: "the server answered 403 Forbidden",
    Reason.HTTP_404: "the server answered 404 Not Found: no such file there",
    Reason.HTTP_408: "the server answered 408 Request Timeout, every try",
    Reason.HTTP_410: "the server answered 410 Gone: the file was removed",
    Reason.HTTP_429: "the server answered 429 Too Many Requests, every try",
    Reason.HTTP_451: "the server answered 451 Unavailable For Legal Reasons",
    Reason.HTTP_500: "the server answered 500 Internal Server Error, every try",
    Reason.HTTP_502: "the server answered 502 Bad Gateway, every try",
    Reason.HTTP_503: "the server answered 503 Service Unavailable, every try",
    Reason.HTTP_504: "the server answered 504 Gateway Timeout, every try",
    Reason.HTTP_4XX: "the server refused the request with another 4xx status (the status is in the detail)",
    Reason.HTTP_5XX: "the server failed with another 5xx status (the status is in the detail)",
    Reason.HTTP_OTHER: "the server answered a status that is neither 200 nor a redirect (the status is in the detail)",
    Reason.TOO_LARGE: "the image is over MAX_IMAGE_BYTES",
    Reason.NOT_AN_IMAGE: "the bytes are not an image (an HTML page, an empty body, ...)",
    Reason.UNSUPPORTED_FORMAT: "an image, but not JPEG, PNG, WebP, GIF, HEIC or AVIF",
    Reason.TOO_COMPLEX: "too slow to decode (too many JPEG scans, PNG chunks or GIF blocks)",
    Reason.TOO_MANY_PIXELS: "more pixels than MAX_IMAGE_PIXELS",
    Reason.CORRUPT_IMAGE: "the image data is truncated or corrupt",
    Reason.NOT_FOUND: "the image file is missing from IMAGES_DIR (or the photo from PHOTOS_DIR)",
    Reason.UNSAFE_PATH: (
        "the path leads outside IMAGES_DIR or PHOTOS_DIR (absolute, '..', or a symlink pointing out): never followed"
    ),
    Reason.UNREADABLE: "the image file cannot be read (permissions, disk error); fix it, then `dyimages retry`",
    Reason.BAD_BASE64: "the uploaded image is not valid base64",
    Reason.INTERNAL_ERROR: "the embedding service failed on this image in an unexpected way (a bug: see its log)",
    Reason.INVALID_JSON: "the message is not JSON",
    Reason.UNSUPPORTED_SCHEMA: "the message has a schema version this indexer does not read",
    Reason.INVALID_MESSAGE: "the message is JSON but not a valid image message",
    Reason.EMBED_FAILED: "the embedding service could not embed the image and gave no reason",
    Reason.EMBED_REFUSED: "the embedding service refused the request for this image alone",
    Reason.EMBED_SERVER_ERROR: (
        "the embedding service failed (5xx) on this image alone INDEXER_EMBED_ATTEMPTS times while it served others"
    ),
    Reason.EMBED_TIMEOUT: "the embedding service never answered for this image alone, INDEXER_EMBED_ATTEMPTS times",
    Reason.EMBED_CRASHED: "the embedding service went down while it held this image, INDEXER_EMBED_ATTEMPTS times",
    Reason.DELIVERY_LIMIT: "RabbitMQ gave up after 20 deliveries: the message kept crashing or stalling its consumer",
    Reason.REJECTED: "its consumer refused it for good (the downloader's control queue: not a retry request)",
    Reason.UNKNOWN: "no reason recorded, or a word this version does not know",
}


def reasons_at(*stages: Stage) -> tuple[Reason, ...]:
    """Every reason that arises at one of ``stages``, in the enum's order."""
    return tuple(reason for reason in Reason if reason.stage in stages)


# What a failed URL can record (the downloader; UNKNOWN for a word another version wrote), and so what
# `dyimages retry --reason` accepts.
DOWNLOAD_REASONS = reasons_at(Stage.FETCH, Stage.ANSWER, Stage.BYTES, Stage.NONE)
# What a file of the photo library can fail with (the scanner: reading the file, then the image checks),
# also accepted by `dyimages retry --reason`.
LIBRARY_REASONS = (Reason.UNSAFE_PATH, Reason.UNREADABLE, *reasons_at(Stage.BYTES, Stage.NONE))
