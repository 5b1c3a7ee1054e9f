"""Fetch details the URL-file scenario does not reach: a connect that hangs, Retry-After forms."""

from __future__ import annotations

import email.utils
import socket
import time

import aiohttp
import pytest

from downloader.fetch import Fetcher, FetchFailed, parse_retry_after
from downloader.guard import AddressPolicy, guarded_connector
from dyimages_common.settings import parse_networks


@pytest.mark.unit
def test_retry_after_in_seconds_or_as_a_date() -> None:
    assert parse_retry_after("7") == 7.0
    in_a_minute = email.utils.formatdate(time.time() + 60, usegmt=True)
    assert 50 < (parse_retry_after(in_a_minute) or 0) <= 60
    assert parse_retry_after(email.utils.formatdate(time.time() - 60, usegmt=True)) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


@pytest.mark.integration
async def test_a_connect_that_hangs_times_out_as_a_transient_failure() -> None:
    # A listening socket that never accepts, its backlog filled: the next connect gets no answer.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(0)
        port = listener.getsockname()[1]
        fillers = [socket.socket() for _ in range(3)]
        for filler in fillers:
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
        connector = guarded_connector(AddressPolicy(parse_networks("127.0.0.1/32")), limit=4, limit_per_host=4)
        timeout = aiohttp.ClientTimeout(sock_connect=0.3)
        try:
            async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
                fetcher = Fetcher(session, max_bytes=1000, max_redirects=1, timeout_s=10)
                with pytest.raises(FetchFailed) as failure:
                    await fetcher.fetch(f"http://127.0.0.1:{port}/image.jpg")
        finally:
            for filler in fillers:
                filler.close()
    assert (failure.value.reason, failure.value.transient) == ("timeout", True)
    assert "ConnectionTimeoutError" in failure.value.detail
