"""The first open of a download (the header read that estimates the decode) is under the decode budget.

Opening is not free: libwebp allocates a WebP's canvases when the file is opened, and Pillow keeps
what it reads of a JPEG's, PNG's or GIF's metadata. So the keeper reserves what the bytes alone say
opening costs (``open_memory``) before the header is read, and the decode memory before decoding.
Seen from inside the real ImageKeeper: when the header is read, the budget already holds the
opening's bytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from downloader import storing
from downloader.storing import ImageKeeper
from dyimages_common.images.checks import open_memory
from testkit.images import encode, make_image

from .conftest import make_settings

pytestmark = pytest.mark.unit

MiB = 1024 * 1024


async def test_the_header_is_read_under_the_decode_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = make_settings(tmp_path, {}, downloader_max_decode_bytes=512 * MiB)
    keeper = ImageKeeper(settings, state=None, publisher=None)  # type: ignore[arg-type]  # check() only
    data = encode(make_image(1, (1600, 1200)), "WEBP", quality=60)
    limits = {"max_bytes": settings.max_image_bytes, "max_pixels": settings.max_image_pixels}
    held_while_opening: list[int] = []
    real = storing.decode_memory

    def reading_the_header(data: bytes, **kwargs: int) -> int:
        held_while_opening.append(keeper.decode_budget.used)
        return real(data, **kwargs)

    monkeypatch.setattr(storing, "decode_memory", reading_the_header)
    try:
        checked = await keeper.check(data)
    finally:
        keeper.shutdown()
    assert checked.info.format == "WEBP"
    assert held_while_opening == [open_memory(data, **limits)]
    assert held_while_opening[0] >= 2 * 4 * 1600 * 1200  # libwebp's two canvases, allocated at open
    assert keeper.decode_budget.used == 0
