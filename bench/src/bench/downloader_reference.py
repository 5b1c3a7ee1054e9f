"""The downloader's work done plainly, in one process: the reference ``bench downloader`` compares with.

``python -m bench.downloader_reference URLS_FILE IMAGES_DIR QUEUE`` fetches every URL with aiohttp
(the downloader's concurrency, one local host), checks each body with the downloader's own check
(:func:`downloader.image_files.check_image`: a full decode within the limits, hash, name) in a pool of
as many threads as the downloader's decode pool, writes each image with the same atomic write (temporary
file, fsync, rename) in a pool of the same size, builds the same message, records every URL in SQLite in
one transaction at the end, and publishes every message to the real RabbitMQ with publisher confirms.
No URL state machine, SSRF guard, byte budgets, per-host limits, retries or metrics: a strict subset of
the downloader's work, so the downloader cannot be faster. Prints ``{"images_per_s": ...}``, timed
from reading the URL file to the last confirm, as the downloader is.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import aio_pika
import aiohttp

from downloader.image_files import check_image, message_for
from downloader.settings import DownloaderSettings
from dyimages_common.images.storage import write_atomic

CONCURRENCY = 64
WRITE_THREADS = 8  # the downloader's write pool
AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"


async def reference(urls_file: Path, images_dir: Path, queue: str) -> float:
    limits = {
        "max_bytes": DownloaderSettings.model_fields["max_image_bytes"].default,
        "max_pixels": DownloaderSettings.model_fields["max_image_pixels"].default,
    }
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(CONCURRENCY)
    bodies: list[tuple[str, str, str, str]] = []
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        await channel.declare_queue(queue, durable=True)
        started = time.perf_counter()
        text = await asyncio.to_thread(urls_file.read_text)
        urls = [line.strip() for line in text.splitlines() if line.strip()]
        with (
            ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as decode,
            ThreadPoolExecutor(WRITE_THREADS) as write,
        ):
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

                async def one(url: str) -> None:
                    async with slots, session.get(url) as response:
                        response.raise_for_status()
                        data = await response.read()
                    image = await loop.run_in_executor(decode, lambda: check_image(data, **limits))
                    await loop.run_in_executor(write, write_atomic, images_dir, image.path, data)
                    body = message_for(image, url, datetime.now(UTC)).model_dump_json()
                    bodies.append((url, image.sha256, image.path, body))
                    await channel.default_exchange.publish(
                        aio_pika.Message(body.encode(), delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
                        routing_key=queue,
                    )  # returns once the broker confirmed

                await asyncio.gather(*(one(url) for url in urls))
        with sqlite3.connect(images_dir / "reference.sqlite3") as db:
            db.execute("PRAGMA synchronous=FULL")
            db.execute("CREATE TABLE urls (url TEXT PRIMARY KEY, sha256 TEXT, path TEXT, message TEXT)")
            db.executemany("INSERT INTO urls VALUES (?, ?, ?, ?)", bodies)
        elapsed = time.perf_counter() - started
    if len(bodies) != len(urls):
        raise RuntimeError(f"{len(bodies)} of {len(urls)} stored")
    return len(urls) / elapsed


if __name__ == "__main__":
    rate = asyncio.run(reference(Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]))
    print(json.dumps({"images_per_s": rate}))
