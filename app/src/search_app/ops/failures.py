"""What failed for good, and asking the downloader to try again: `dyimages failures`, `dyimages retry` and
the status page's list and **Retry** button.

Three sources, each read on its own (one that cannot be read never hides the others): failed downloads
(the URL state), refused files of the photo library (its state beside it, a path where a URL would be)
and dead-lettered messages (peeked, never consumed). A retry request names a reason or URLs and paths;
the downloader, the only writer of both states, resets what it matches.
"""

from __future__ import annotations

import ipaddress
import re
import sqlite3
from dataclasses import asdict, dataclass, field
from typing import Any

from dyimages_common.library import state as library_state
from dyimages_common.urls import state as url_state
from dyimages_common.urls.refetch import RetryRequest, failure_reason, matching_failures, publish_retry_request
from search_app.ops.dead_letters import DeadLetter, peek_dead_letters
from search_app.ops.status import RABBIT_ERRORS
from search_app.settings import AppSettings

__all__ = ["RABBIT_ERRORS", "Failures", "NothingToRetry", "RetryOutcome", "collect_failures", "request_retry"]


def allow_hint(failure: url_state.UrlFailure) -> str | None:
    """For a URL refused by the SSRF guard: the setting and the CIDR that would let it through.

    The address is the one the downloader saw (under compose: on the compose network, so a server in
    another container has a 172.x address, and 127.0.0.1 is the downloader's own container).
    """
    if failure_reason(failure.reason) != "refused_address":
        return None
    for token in re.findall(r"[0-9A-Fa-f:.]{2,}", failure.reason.split(":", 1)[-1]):
        address = _ip_address(token) or _ip_address(token.rstrip(".:"))  # "::1" or "10.0.0.1:" in a sentence
        if address is None:
            continue
        cidr = f"{address}/{address.max_prefixlen}"
        return (
            f"to fetch it anyway, add {cidr} to DOWNLOADER_ALLOWED_NETWORKS (the downloader's setting, "
            "comma-separated CIDRs; restart the downloader), then `dyimages retry --reason refused_address`"
        )
    return None


def _ip_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@dataclass
class Failures:
    downloads: list[url_state.UrlFailure]
    dead_letters: list[DeadLetter]
    downloads_error: str | None = None
    dead_letters_error: str | None = None
    library: list[library_state.LibraryFailure] = field(default_factory=list)
    library_error: str | None = None

    def download_rows(self) -> list[dict[str, Any]]:
        """Each failed download with what its reason means and its ``hint`` (what would fix it, where known)."""
        return [
            {**asdict(f), "explanation": failure_reason(f.reason).explanation, "hint": allow_hint(f)}
            for f in self.downloads
        ]

    def library_rows(self) -> list[dict[str, Any]]:
        """Each refused file of the photo library (its path relative to PHOTOS_DIR) with what its reason means."""
        return [{**asdict(f), "explanation": failure_reason(f.reason).explanation} for f in self.library]

    @property
    def errors(self) -> list[str]:
        return [e for e in (self.downloads_error, self.library_error, self.dead_letters_error) if e]

    def to_json(self) -> dict[str, Any]:
        return {
            "downloads": self.download_rows(),
            "library_files": self.library_rows(),
            "dead_letters": [d.to_json() for d in self.dead_letters],
            "downloads_error": self.downloads_error,
            "library_error": self.library_error,
            "dead_letters_error": self.dead_letters_error,
        }


def collect_failures(settings: AppSettings, limit: int = 50) -> Failures:
    """Permanent download failures, refused library files (the states) and dead-lettered messages."""
    failures = Failures(downloads=[], dead_letters=[])
    try:
        failures.downloads = url_state.recent_failures(settings.state_db_path, limit=limit)
    except sqlite3.Error as exc:
        failures.downloads_error = f"cannot read the downloader state {settings.state_db_path}: {exc}"
    library = library_state.library_state_path(settings.state_db_path)
    try:
        failures.library = library_state.failures(library, limit=limit)
    except sqlite3.Error as exc:
        failures.library_error = f"cannot read the photo library's state {library}: {exc}"
    try:
        failures.dead_letters = peek_dead_letters(settings, limit=limit)
    except RABBIT_ERRORS as exc:
        failures.dead_letters_error = f"RabbitMQ is not answering: {exc!r}"
    return failures


@dataclass
class RetryOutcome:
    """What a retry request asked for, and which failed URLs and library files the states say it resets."""

    request: RetryRequest
    matching: list[url_state.UrlFailure] | None  # None: the state could not be read
    state_error: str | None = None
    matching_paths: list[str] = field(default_factory=list)

    @property
    def count(self) -> int | None:
        return None if self.matching is None else len(self.matching) + len(self.matching_paths)

    def to_json(self) -> dict[str, Any]:
        return {
            "request_id": self.request.request_id,
            "reason": self.request.reason,
            "urls": list(self.request.urls),
            "matching": self.count,
            "matching_urls": None if self.matching is None else [f.url for f in self.matching],
            "matching_paths": self.matching_paths,
            "state_error": self.state_error,
        }


class NothingToRetry(Exception):
    """The states have no failed URL or refused library file the request matches: nothing was sent."""


def request_retry(
    settings: AppSettings, *, reason: str | None = None, urls: tuple[str, ...] = (), requested_by: str
) -> RetryOutcome:
    """Ask the downloader to fetch matching failed URLs again and to read matching refused library files
    again (it alone writes both states). ``urls`` may name library paths too.

    The states are read first (read-only) to say what will be retried; when they show nothing matching
    the request is not sent (:class:`NothingToRetry`). When they cannot be read (no volume here), the
    request is sent anyway and the downloader decides. Raises one of RABBIT_ERRORS when RabbitMQ
    does not confirm the request.
    """
    request = RetryRequest(reason=reason, urls=urls, requested_by=requested_by)
    outcome = RetryOutcome(request=request, matching=None)
    try:
        outcome.matching = matching_failures(settings.state_db_path, request)
        library = library_state.failures(library_state.library_state_path(settings.state_db_path), limit=-1)
        outcome.matching_paths = [f.path for f in library if request.matches(f.path, f.reason)]
    except sqlite3.Error as exc:  # either state unreadable: what matches is unknown, the downloader decides
        outcome.matching, outcome.matching_paths = None, []
        outcome.state_error = f"cannot read the downloader state {settings.state_db_path}: {exc}"
    if outcome.count == 0:
        raise NothingToRetry(f"no failed URL or library file matches ({request.describe()}); nothing to retry")
    publish_retry_request(settings, request)
    return outcome
