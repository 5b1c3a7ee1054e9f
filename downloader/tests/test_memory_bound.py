"""The image bodies the downloader holds at once stay within DOWNLOADER_MAX_INFLIGHT_BYTES.

Many 1 MiB images and one larger than the whole budget, served as static files by a real HTTP
server in its own process (so its buffers are not in the measured process), and two without
Content-Length streamed slowly by the local test server, fetched 16 at a time by the in-process
downloader, the real RabbitMQ behind it. Two measures: the budget's own peak, and, independent
of it, the peak of Python's traced memory (``tracemalloc``: the bodies are Python bytes objects;
Pillow's pixel buffers are not traced), which without the bound holds a dozen bodies or more. The decode
budget's peak shows decodes ran one at a time when each needs the whole decode budget.
"""

from __future__ import annotations

import asyncio
import io
import random
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

from downloader.service import Downloader
from downloader.settings import DownloaderSettings
from dyimages_common.images.checks import decode_memory
from dyimages_common.urls.state import status_counts
from testkit.http_server import ImageServer, Route
from testkit.procs import free_port, start_module, stop, wait_http_ok

pytestmark = pytest.mark.integration

MiB = 1024 * 1024
BUDGET = 3 * MiB


def _noise_png(seed: int, width: int, height: int) -> bytes:
    """An incompressible greyscale PNG of about width x height bytes (stored, not deflated: quick)."""
    image = Image.frombytes("L", (width, height), random.Random(seed).randbytes(width * height))
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=0)
    return buffer.getvalue()


def test_bodies_in_flight_stay_within_the_byte_budget(
    tmp_path: Path,
    image_server: ImageServer,
    rabbit_environment: dict[str, str],
    settings_for: Callable[..., DownloaderSettings],
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    for i in range(60):
        (site / f"{i}.png").write_bytes(_noise_png(i, 1024, 1024))
    larger_than_budget = _noise_png(200, 2048, 1600)
    assert len(larger_than_budget) > BUDGET
    (site / "large.png").write_bytes(larger_than_budget)
    port = free_port()
    static = start_module("http.server", "--bind", "127.0.0.1", "--directory", str(site), str(port), env={})
    try:
        wait_http_ok(f"http://127.0.0.1:{port}/large.png", timeout=30, process=static)
        urls = [f"http://127.0.0.1:{port}/{file.name}" for file in sorted(site.iterdir())]
        urls += [
            image_server.add(f"/chunked-{i}.png", Route(body=_noise_png(100 + i, 1024, 1024), drip=0.0002))
            for i in (1, 2)
        ]
        (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
        downloader, traced_peak, settings = _download(tmp_path, rabbit_environment, settings_for)
    finally:
        stop(static)

    assert status_counts(settings.state_db_path)["done"] == len(urls)  # none starved, the large one too
    assert downloader.budget.used == 0  # every reservation given back
    # Each body is briefly held twice (read buffer, then bytes); each of the 16 connections buffers up
    # to 256 KiB while its download waits for budget; 6 MiB for the rest. Without the bound, sixteen
    # 1 MiB bodies at once and dozens more waiting for the decoder (about 40 MiB here).
    assert traced_peak < 2 * len(larger_than_budget) + 16 * MiB // 4 + 6 * MiB, (
        f"traced peak {traced_peak / MiB:.1f} MiB"
    )
    # At most the budget, or one body alone: the large one, or a body of unknown length, for which
    # MAX_IMAGE_BYTES is reserved until it is read.
    assert BUDGET < downloader.budget.peak <= settings.max_image_bytes
    # Decoding: 1 MiB of decode memory allowed, each 1024x1024 grey image needs 1 MiB plus the
    # overhead (3 MiB), so one at a time; the large one (5.1 MiB) alone. Two at once would be 6 MiB.
    small = decode_memory(_noise_png(0, 1024, 1024), max_bytes=5 * MiB, max_pixels=10**8)
    large = decode_memory(larger_than_budget, max_bytes=5 * MiB, max_pixels=10**8)
    assert small < large < 2 * small
    assert downloader.decode_budget.used == 0
    assert downloader.decode_budget.peak == large


def _download(
    tmp_path: Path, rabbit_environment: dict[str, str], settings_for: Callable[..., DownloaderSettings]
) -> tuple[Downloader, int, DownloaderSettings]:
    """Run the downloader once over ``urls.txt``; return it, the traced-memory peak and its settings."""
    settings = settings_for(
        tmp_path,
        rabbit_environment,
        downloader_max_inflight_bytes=BUDGET,
        downloader_max_decode_bytes=MiB,
        downloader_concurrency=16,
        downloader_per_host=16,
        downloader_timeout_s=60.0,
        max_image_bytes=5 * MiB,
    )

    downloader = Downloader(settings)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        asyncio.run(downloader.run(once=True))
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    return downloader, traced_peak, settings


def test_an_image_larger_than_the_budget_runs_alone_and_nothing_waits_for_ever() -> None:
    """The budget itself: arrival order, a request larger than the limit granted when nothing is
    held, and a cancelled waiter leaving no bytes behind."""
    from downloader.budget import ByteBudget

    async def scenario() -> list[str]:
        budget = ByteBudget(10)
        order: list[str] = []
        first = await budget.reserve(6)

        async def take(name: str, size: int) -> None:
            reservation = await budget.reserve(size)
            order.append(name)
            await asyncio.sleep(0.01)
            reservation.release()

        large = asyncio.create_task(take("large", 25))
        await asyncio.sleep(0)
        small = asyncio.create_task(take("small", 2))  # fits now, but arrived after the large one
        cancelled = asyncio.create_task(budget.reserve(1))
        await asyncio.sleep(0.01)
        assert order == []
        cancelled.cancel()
        first.release()
        await asyncio.gather(large, small)
        await asyncio.gather(cancelled, return_exceptions=True)
        assert budget.used == 0
        assert budget.peak == 25
        return order

    assert asyncio.run(scenario()) == ["large", "small"]
