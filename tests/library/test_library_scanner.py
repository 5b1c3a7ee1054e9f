"""The downloader's library scanner as a real process, against the real RabbitMQ: what it publishes and
records for a photo folder that changes under it, and what it does with hostile and broken files.

Messages are the scanner's whole contract with the rest of the pipeline (tests/library/test_library_pipeline.py
follows them into the index): one ``LibraryFiles`` per image whose set of paths changed, with the whole set.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import aio_pika
import pytest

from dyimages_common.images.heif import register_heif
from dyimages_common.images.storage import sha256_hex
from dyimages_common.library import state as library_state
from dyimages_common.messaging.messages import LibraryFiles, parse_message
from dyimages_common.messaging.rabbit import declare_topology
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings, load_settings
from dyimages_common.urls.refetch import RetryRequest, publish_retry_request
from testkit.exif_photos import photo
from testkit.images import encode, jpeg, make_image, png
from testkit.photo_library import HOSTILE, add_hostile_files, running_downloader
from testkit.rabbit import AMQP_URL, rabbit_env, read_messages

pytestmark = pytest.mark.integration

Latest = dict[str, LibraryFiles]  # sha256 -> the newest message about it


def declare(queue: str) -> None:
    async def run() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            await declare_topology(await connection.channel(), queue)

    asyncio.run(run())


def collect(queue: str, latest: Latest, until: Callable[[Latest], bool], what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not until(latest):
        assert time.monotonic() < deadline, f"no {what} within {timeout:g} s; seen: {latest}"
        for body in read_messages(queue, idle_s=0.3):
            message = parse_message(body)
            assert isinstance(message, LibraryFiles)
            if message.sha256 not in latest or latest[message.sha256].seq < message.seq:
                latest[message.sha256] = message


def paths(latest: Latest, data: bytes) -> tuple[str, ...] | None:
    message = latest.get(sha256_hex(data))
    return None if message is None else message.paths


def test_a_changing_folder_is_followed_and_hostile_files_get_a_reason(tmp_path: Path, rabbit_queue: str) -> None:
    root, state_dir = tmp_path / "photos", tmp_path / "images"
    (root / "sub").mkdir(parents=True)
    state_dir.mkdir()
    a = photo(1, make="Canon", model="EOS R6", taken="2024:07:14 18:03:00", orientation=6)
    b, b_new, slow = png(2), png(3), jpeg(4, size=(800, 600))
    (root / "a.jpg").write_bytes(a)
    (root / "sub" / "b.png").write_bytes(b)
    (root / "copy of a.jpg").write_bytes(a)
    register_heif()
    phone, web = encode(make_image(5), "HEIF"), encode(make_image(6), "AVIF")  # an iPhone's, a browser's
    (root / "sub" / "IMG_0005.HEIC").write_bytes(phone)
    (root / "sub" / "web.avif").write_bytes(web)
    add_hostile_files(root, tmp_path / "outside")
    env = {
        **rabbit_env(rabbit_queue),
        "IMAGES_DIR": str(state_dir),
        "URLS_FILE": str(tmp_path / "no-urls.txt"),
        "PHOTOS_DIR": str(root),
        "MAX_IMAGE_PIXELS": "1000000",
        "DOWNLOADER_LIBRARY_POLL_S": "0.3",
        "DOWNLOADER_LIBRARY_SETTLE_S": "2.0",  # the copy below writes every 0.4 s
    }
    state = library_state.library_state_path(state_dir / ".state" / "downloader.sqlite3")
    latest: Latest = {}
    declare(rabbit_queue)
    with running_downloader(env, tmp_path / "downloader.log"):
        collect(rabbit_queue, latest, lambda seen: len(seen) == 4, "message for each of the four photos")
        assert latest[sha256_hex(phone)].content_type == "image/heic"
        assert latest[sha256_hex(web)].content_type == "image/avif"
        assert paths(latest, a) == ("a.jpg", "copy of a.jpg")  # same content, one message with both paths
        assert paths(latest, b) == ("sub/b.png",)
        assert latest[sha256_hex(a)].camera == "Canon EOS R6"
        assert latest[sha256_hex(a)].orientation == 6
        failures = {f.path: Reason.of_error(f.reason) for f in library_state.failures(state, limit=-1)}
        assert failures == HOSTILE, "every hostile file has its reason, and the scan went on past each"

        # Copied in slowly: never read while it grows; read once it held still.
        with (root / "slow.jpg").open("wb") as copying:
            for start in range(0, len(slow), len(slow) // 6 + 1):
                copying.write(slow[start : start + len(slow) // 6 + 1])
                copying.flush()
                time.sleep(0.4)
                assert "slow.jpg" not in {f.path for f in library_state.all_files(state)}, "read while it grew"
        collect(rabbit_queue, latest, lambda seen: paths(seen, slow) == ("slow.jpg",), "the slow copy, whole")

        # Renamed and moved between folders: the same point's paths change.
        (root / "2024").mkdir()
        os.rename(root / "a.jpg", root / "2024" / "a.jpg")
        os.rename(root / "sub" / "b.png", root / "b.png")
        collect(rabbit_queue, latest, lambda seen: paths(seen, a) == ("2024/a.jpg", "copy of a.jpg"), "a's move")
        collect(rabbit_queue, latest, lambda seen: paths(seen, b) == ("b.png",), "b's move")

    # While the downloader is down: b overwritten with new bytes, a copy deleted, the pixel limit raised.
    (root / "b.png").write_bytes(b_new)
    (root / "copy of a.jpg").unlink()
    env["MAX_IMAGE_PIXELS"] = str(50_000_000)
    with running_downloader(env, tmp_path / "downloader.log"):
        collect(rabbit_queue, latest, lambda seen: paths(seen, b_new) == ("b.png",), "b's new bytes")
        assert paths(latest, b) == ()  # the old content lost its one path: its point goes
        collect(rabbit_queue, latest, lambda seen: paths(seen, a) == ("2024/a.jpg",), "the deleted copy")
        # Nothing else changed, so nothing else was sent; the bomb stays refused until someone asks.
        assert paths(latest, slow) == ("slow.jpg",)
        assert len(latest) == 6
        request = RetryRequest(reason=Reason.TOO_MANY_PIXELS, requested_by="test")
        publish_retry_request(load_settings(RabbitSettings, **_rabbit(rabbit_queue)), request)
        bomb_file = (root / "hostile" / "bomb.png").read_bytes()
        collect(rabbit_queue, latest, lambda seen: paths(seen, bomb_file) == ("hostile/bomb.png",), "the retried bomb")
    remaining = {f.path for f in library_state.failures(state, limit=-1)}
    assert remaining == set(HOSTILE) - {"hostile/bomb.png"}


def _rabbit(queue: str) -> dict[str, object]:
    return {"rabbitmq_host": "127.0.0.1", "rabbitmq_queue": queue}
