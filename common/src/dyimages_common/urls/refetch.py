"""Asking the downloader to fetch failed URLs again: the retry request and how it reaches the downloader.

A URL that failed for good stays ``failed`` (adding it to the URL file again changes nothing: it is
known). After the cause is fixed (a network allowed, a server back), ``dyimages retry`` or the
status page's button asks for another try. They cannot change the URL state themselves: the
downloader is its only writer, and compose mounts the images volume (where the state lives)
read-only in the app. So they publish a :class:`RetryRequest` to the downloader's control queue
(``<RABBITMQ_QUEUE>.control``, declared by :func:`dyimages_common.messaging.rabbit.declare_control_queue`),
with publisher confirms; the downloader consumes it, resets the matching ``failed`` URLs to
``pending`` (attempts back to 0) and fetches them again. A request made while the downloader is
stopped waits in the durable queue; a request that matches nothing changes nothing.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Literal

import aio_pika
from pydantic import BaseModel, ConfigDict, Field, field_validator

from dyimages_common.messaging.rabbit import amqp_url, declare_control_queue, persistent_message
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings
from dyimages_common.urls import state as url_state

MAX_URLS_PER_REQUEST = 10_000
PUBLISH_TIMEOUT_S = 15.0


def failure_reason(last_error: str | None) -> Reason:
    """The reason of a failed URL's ``last_error`` (``"http_404: 404 Not Found"`` -> ``Reason.HTTP_404``;
    an old ``"http_418: ..."`` -> ``Reason.HTTP_4XX``; a word this version does not know -> ``Reason.UNKNOWN``)."""
    return Reason.of_error(last_error)


class RetryRequest(BaseModel):
    """Fetch again the failed URLs that match: all of them, those failed for ``reason``, or ``urls``
    (both given: the URLs among those that failed for ``reason``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    schema_version: Literal[1] = 1
    request_id: str = Field(default_factory=lambda: uuid.uuid4().hex, min_length=1, max_length=64)
    requested_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    requested_by: str = Field("dyimages", max_length=64, description="Who asked: the CLI or the app.")
    reason: Reason | None = Field(None, description="Only URLs whose last_error reads back as this reason.")
    urls: tuple[str, ...] = Field((), max_length=MAX_URLS_PER_REQUEST)

    @field_validator("reason", mode="before")
    @classmethod
    def _read_old_words(cls, value: object) -> object:
        """A request queued by an older version may name ``http_418``: it means that status's class now."""
        if isinstance(value, str) and value not in Reason._value2member_map_ and value.startswith("http_"):
            return Reason.parse(value)
        return value

    @cached_property
    def _url_set(self) -> frozenset[str]:
        """The URLs as a set: a state of 100k failed rows is checked against up to 10k URLs in one pass."""
        return frozenset(self.urls)

    def matches(self, url: str, last_error: str | None) -> bool:
        if self.urls and url not in self._url_set:
            return False
        return self.reason is None or failure_reason(last_error) is self.reason

    def describe(self) -> str:
        if self.urls and self.reason:
            return f"{len(self.urls)} URL(s) failed with {self.reason}"
        if self.urls:
            return f"{len(self.urls)} URL(s)"
        return f"failed URLs with reason {self.reason}" if self.reason else "every failed URL"


def matching_failures(state_db: Path, request: RetryRequest) -> list[url_state.UrlFailure]:
    """The failed URLs ``request`` would reset, read from the downloader's state (read-only)."""
    return [f for f in url_state.recent_failures(state_db, limit=-1) if request.matches(f.url, f.reason)]


async def publish_retry_request_async(settings: RabbitSettings, request: RetryRequest) -> None:
    connection = await aio_pika.connect(amqp_url(settings), client_properties={"connection_name": "dyimages-retry"})
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        queue = await declare_control_queue(channel, settings.rabbitmq_queue)
        message = persistent_message(request.model_dump_json().encode())
        await channel.default_exchange.publish(message, routing_key=queue.name, timeout=PUBLISH_TIMEOUT_S)


def publish_retry_request(settings: RabbitSettings, request: RetryRequest) -> None:
    """Put ``request`` on the control queue; returns once RabbitMQ confirmed it (it is then durable)."""
    asyncio.run(asyncio.wait_for(publish_retry_request_async(settings, request), timeout=PUBLISH_TIMEOUT_S * 2))
