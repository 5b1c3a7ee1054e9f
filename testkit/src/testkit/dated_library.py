"""A small library of photos with different EXIF dates and cameras, indexed by the real indexer.

Each photo carries a real EXIF block (testkit.exif_photos); its message is the one the downloader builds
(``downloader.image_files.check_image`` and ``message_for``: the real EXIF reading), published to the test's
own queue; the real indexer embeds it through the real embedding service into an embedded Qdrant folder.
Used by the app's date tests (CLI and UI) that need a dated index but not the downloader's fetching.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from downloader.image_files import check_image, message_for
from dyimages_common.images.storage import write_atomic
from testkit.exif_photos import photo
from testkit.images import jpeg
from testkit.indexed_library import Library, run_indexer
from testkit.messages import publish

DOWNLOADED_AT = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)  # what "downloaded" means for these photos

# name -> photo bytes; names are the URL's file names (https://dated.example/<name>)
DATED = {
    "beach-2018.jpg": photo(8101, taken="2018:07:14 16:20:00", make="Canon", model="Canon EOS 80D"),
    "snow-2021.jpg": photo(
        8102, taken="2021:01:30 09:00:00", offset="+01:00", make="NIKON CORPORATION", model="NIKON D750"
    ),
    # half past midnight on 1 June 2022 in UTC+2: 31 May 2022 in UTC, the day the date filter counts
    "midnight-2022.jpg": photo(8105, taken="2022:06:01 00:30:00", offset="+02:00"),
    # a camera name that is Markdown and Rich markup: it must show as the text it is
    "party-2023.jpg": photo(8103, taken="2023:12:31 22:00:00", make="[evil](javascript:alert(1))", model="<b>[bold]X"),
    "scan-no-exif.jpg": jpeg(8104),  # no EXIF: dated by its download
}


@dataclass(frozen=True)
class DatedPhoto:
    name: str
    sha256: str


def index_dated(library: Library, log_path: Path) -> dict[str, DatedPhoto]:
    """Store, publish and index DATED into ``library``; the photos by name."""
    photos: dict[str, DatedPhoto] = {}
    messages = []
    for name, data in DATED.items():
        checked = check_image(data, max_bytes=10_000_000, max_pixels=10_000_000)
        write_atomic(library.images_dir, checked.path, data)
        messages.append(message_for(checked, f"https://dated.example/{name}", DOWNLOADED_AT))
        photos[name] = DatedPhoto(name, checked.sha256)
    asyncio.run(publish(library.rabbit_settings(), messages))
    run_indexer(library.env, log_path)
    return photos
