"""The slots a download takes: every slot comes back, whatever the download's end, and a busy host
waits on its own limit without holding anything the other hosts need.

``fetch`` here is a stand-in for the network (an async function that returns bytes): the slots do not
look at what it does, only at when it starts and ends.
"""

import asyncio

import pytest

from downloader.fetch import Fetched, FetchFailed
from downloader.slots import DownloadSlots
from dyimages_common.reasons import Reason

pytestmark = pytest.mark.unit


async def _body(url: str) -> Fetched:
    await asyncio.sleep(0)
    return Fetched(data=url.encode(), final_url=url, redirects=0)


async def test_many_more_downloads_than_slots_all_finish_and_give_every_slot_back() -> None:
    slots = DownloadSlots(concurrency=1, per_host=1)
    done: list[str] = []

    async def download(url: str) -> None:
        async with slots.fetched(url, _body) as fetched:
            assert slots.in_flight  # past its slots while it checks and stores
            done.append(fetched.data.decode())

    urls = [f"https://host{i % 3}.example/{i}.jpg" for i in range(40)]  # 10 x the 4 body slots
    await asyncio.wait_for(asyncio.gather(*(download(url) for url in urls)), timeout=10)
    assert sorted(done) == sorted(urls)
    assert not slots.in_flight


async def test_a_failed_fetch_or_a_failed_store_gives_its_slots_back() -> None:
    slots = DownloadSlots(concurrency=1, per_host=1)

    async def refused(url: str) -> Fetched:
        raise FetchFailed(Reason.HTTP_404, "not found")

    for _ in range(10):
        with pytest.raises(FetchFailed):
            async with slots.fetched("https://a.example/x.jpg", refused):
                pass
        with pytest.raises(ValueError, match="not an image"):
            async with slots.fetched("https://a.example/y.jpg", _body):
                raise ValueError("not an image")
    async with slots.fetched("https://a.example/z.jpg", _body) as fetched:
        assert fetched.data == b"https://a.example/z.jpg"
    assert not slots.in_flight
