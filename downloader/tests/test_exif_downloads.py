"""The photo's own date, camera and orientation travel from its EXIF to the indexer: the real downloader
(one ``--once`` run) fetches photos from a local HTTP server and publishes on the real RabbitMQ; each
message read back carries what the photo's EXIF says, and photos with broken EXIF are stored and
published like any other, without those facts."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from downloader.service import Downloader
from downloader.settings import DownloaderSettings
from dyimages_common.images.storage import sha256_hex
from dyimages_common.messaging.messages import ImageDownloaded
from testkit.exif_photos import photo
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.rabbit import delete_topology, rabbit_env, read_messages, require_rabbitmq, unique_queue_name

pytestmark = pytest.mark.integration

PHOTOS = {
    "/canon.jpg": photo(
        1, taken="2024:05:06 07:08:09", offset="+02:00", make="Canon", model="Canon EOS R5", orientation=6
    ),
    "/phone.png": photo(2, "PNG", taken="2019:12:31 23:59:59", make="Apple", model="iPhone 12 Pro"),
    "/clock-only.webp": photo(3, "WEBP", taken="2001:02:03 04:05:06"),
    "/no-exif.jpg": jpeg(4),
    "/cleared-clock.jpg": photo(5, taken="0000:00:00 00:00:00", orientation=99, model=b"\xff\xfe"),
    "/corrupt-block.jpg": photo(6, exif=b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff" + b"\x01" * 40),
    "/huge-date.png": photo(7, "PNG", taken="9" * 100_000),
}
NOTHING = (None, None, None)
EXPECTED = {
    "/canon.jpg": (datetime(2024, 5, 6, 7, 8, 9, tzinfo=timezone(timedelta(hours=2))), "Canon EOS R5", 6),
    "/phone.png": (datetime(2019, 12, 31, 23, 59, 59, tzinfo=UTC), "Apple iPhone 12 Pro", None),
    "/clock-only.webp": (datetime(2001, 2, 3, 4, 5, 6, tzinfo=UTC), None, None),
    "/no-exif.jpg": NOTHING,
    "/cleared-clock.jpg": NOTHING,
    "/corrupt-block.jpg": NOTHING,
    "/huge-date.png": NOTHING,
}


@pytest.fixture(scope="module")
def messages(
    tmp_path_factory: pytest.TempPathFactory, settings_for: Callable[..., DownloaderSettings]
) -> Iterator[dict[str, ImageDownloaded]]:
    """The messages of one downloader run over PHOTOS, by URL path."""
    require_rabbitmq()
    queue = unique_queue_name("exif")
    tmp: Path = tmp_path_factory.mktemp("exif")
    try:
        with ImageServer() as server:
            for path, body in PHOTOS.items():
                server.add(path, Route(body=body))
            (tmp / "urls.txt").write_text("".join(server.url(path) + "\n" for path in PHOTOS))
            settings = settings_for(tmp, rabbit_env(queue), max_image_bytes=1_000_000, max_image_pixels=1_000_000)
            asyncio.run(Downloader(settings).run(once=True))
            bodies = read_messages(queue, idle_s=1.0)
            found = [ImageDownloaded.model_validate_json(body) for body in bodies]
            yield {message.url.removeprefix(server.url("")): message for message in found}
    finally:
        delete_topology(queue)


def test_every_photo_is_published_whatever_its_exif(messages: dict[str, ImageDownloaded]) -> None:
    assert set(messages) == set(PHOTOS)
    for path, message in messages.items():
        assert message.sha256 == sha256_hex(PHOTOS[path]), path


@pytest.mark.parametrize("path", list(EXPECTED))
def test_the_message_carries_the_photos_exif(messages: dict[str, ImageDownloaded], path: str) -> None:
    message = messages[path]
    assert (message.taken_at, message.camera, message.orientation) == EXPECTED[path]


def test_the_date_keeps_its_offset_on_the_wire(messages: dict[str, ImageDownloaded]) -> None:
    """The indexer reads the JSON: the camera's own offset survives serialisation."""
    wire = messages["/canon.jpg"].model_dump_json()
    assert '"taken_at":"2024-05-06T07:08:09+02:00"' in wire
