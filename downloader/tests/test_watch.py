"""Watch mode: lines appended, inserted, or saved by an editor that renames a new file into place
are picked up while the downloader runs, without a restart."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from downloader.service import Downloader
from downloader.settings import DownloaderSettings
from dyimages_common.messaging.messages import ImageDownloaded
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.rabbit import delete_topology, take_messages

pytestmark = pytest.mark.integration


async def _until(condition: Callable[[], bool], what: str, limit_s: float = 15.0) -> None:
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {limit_s} s: {what}")
        await asyncio.sleep(0.05)


async def test_edits_of_the_url_file_are_picked_up_while_watching(
    tmp_path: Path,
    image_server: ImageServer,
    rabbit_queue: str,
    rabbit_environment: dict[str, str],
    settings_for: Callable[..., DownloaderSettings],
) -> None:
    urls = {name: image_server.add(f"/{name}.jpg", Route(body=jpeg(seed))) for seed, name in enumerate("abcd")}
    url_file = tmp_path / "urls.txt"
    url_file.write_text(f"{urls['a']}\n")
    downloader = Downloader(settings_for(tmp_path, rabbit_environment))
    running = asyncio.create_task(downloader.run(once=False))

    def done() -> int:
        assert not running.done(), running
        return downloader.counts()["done"]

    await _until(lambda: done() == 1, "the first URL")
    with url_file.open("a") as handle:  # appended
        handle.write(f"{urls['b']}\n")
    await _until(lambda: done() == 2, "an appended line")
    url_file.write_text(f"{urls['c']}\n{urls['a']}\n{urls['b']}\n")  # inserted at the top, in place
    await _until(lambda: done() == 3, "an inserted line")
    saved = tmp_path / ".urls.txt.tmp"  # an editor's save: a new file renamed over the old one
    saved.write_text(f"{urls['c']}\n{urls['a']}\n{urls['d']}\n{urls['b']}\n")
    os.replace(saved, url_file)
    await _until(lambda: done() == 4, "a line saved by rename")
    await _until(lambda: downloader.unconfirmed == 0, "messages confirmed")

    downloader.stop_requested.set()
    await asyncio.wait_for(running, 10)
    assert all(image_server.hits[f"/{name}.jpg"] == 1 for name in "abcd")
    messages = [ImageDownloaded.model_validate_json(body) for body in await take_messages(rabbit_queue, idle_s=1.0)]
    assert sorted(m.url for m in messages) == sorted(urls.values())


async def test_a_queue_deleted_while_running_is_declared_again_and_nothing_is_lost(
    tmp_path: Path,
    image_server: ImageServer,
    rabbit_queue: str,
    rabbit_environment: dict[str, str],
    settings_for: Callable[..., DownloaderSettings],
) -> None:
    first, second = (image_server.add(f"/{n}.jpg", Route(body=jpeg(50 + n))) for n in (1, 2))
    url_file = tmp_path / "urls.txt"
    url_file.write_text(f"{first}\n")
    downloader = Downloader(settings_for(tmp_path, rabbit_environment))
    running = asyncio.create_task(downloader.run(once=False))
    await _until(lambda: downloader.counts()["done"] == 1 and downloader.unconfirmed == 0, "first")

    await asyncio.to_thread(delete_topology, rabbit_queue)  # an operator deletes the queue
    with url_file.open("a") as handle:
        handle.write(f"{second}\n")
    await _until(lambda: downloader.counts()["done"] == 2 and downloader.unconfirmed == 0, "second")
    downloader.stop_requested.set()
    await asyncio.wait_for(running, 10)
    messages = [ImageDownloaded.model_validate_json(body) for body in await take_messages(rabbit_queue)]
    assert [m.url for m in messages] == [second]  # the first went with the deleted queue
