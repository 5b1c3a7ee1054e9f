"""Stored images and their ImageDownloaded messages, made and published the way the downloader does.

For tests and benchmarks of the consumer side that must not depend on the downloader.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path

import aio_pika

from dyimages_common.images.storage import sha256_hex, stored_path, write_atomic
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.messaging.rabbit import connect, declare_topology
from dyimages_common.settings import RabbitSettings
from testkit.images import jpeg


def message_for(data: bytes, url: str, *, extension: str = "jpg", content_type: str = "image/jpeg") -> ImageDownloaded:
    """The message for ``data`` fetched from ``url`` (sizes as testkit.images makes them)."""
    sha = sha256_hex(data)
    return ImageDownloaded(
        sha256=sha,
        path=stored_path(sha, extension),
        url=url,
        content_type=content_type,
        width=64,
        height=48,
        bytes=len(data),
        downloaded_at=datetime.now(UTC),
    )


def stored_image(
    images_dir: Path, seed: int, url: str | None = None, size: tuple[int, int] = (64, 48)
) -> ImageDownloaded:
    """Write a real JPEG into ``images_dir`` with ``write_atomic`` and return its message."""
    data = jpeg(seed, size)
    event = message_for(data, url or f"http://images.example/{seed}.jpg")
    event = event.model_copy(update={"width": size[0], "height": size[1]})
    write_atomic(images_dir, event.path, data)
    return event


async def publish(settings: RabbitSettings, bodies: Iterable[ImageDownloaded | bytes]) -> int:
    """Publish persistent messages (publisher confirms) to RABBITMQ_QUEUE, declaring its topology."""
    count = 0
    connection = await connect(settings, "test-publisher")
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, settings.rabbitmq_queue)
        for body in bodies:
            raw = body.model_dump_json().encode() if isinstance(body, ImageDownloaded) else body
            await channel.default_exchange.publish(
                aio_pika.Message(raw, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                routing_key=settings.rabbitmq_queue,
            )
            count += 1
    return count
