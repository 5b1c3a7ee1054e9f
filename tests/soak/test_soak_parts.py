"""The soak's own parts: its URL catalog, its attack plan, its log reader, its connection cutter."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import pytest

from bench.soak.catalog import BAD_KINDS, INVALID_LINES, build_catalog
from bench.soak.chaos import (
    CLOSE_CONNECTIONS,
    KILL_DOWNLOADER,
    KILL_EMBEDDING,
    KILL_INDEXER,
    POISON,
    RESTART_DOWNLOADER,
    _client_ports,
    chaos_plan,
    close_connections,
    poison_messages,
)
from bench.soak.logs import read_json_log
from dyimages_common.messaging.messages import ImageDownloaded
from testkit.http_server import ImageServer
from testkit.rabbit import AMQP_URL, require_rabbitmq


@pytest.mark.unit
def test_catalog_has_every_bad_kind_duplicates_and_only_loopback_addresses(image_server: ImageServer) -> None:
    catalog = build_catalog(image_server, 200, seed=1, prefix="/t")
    kinds = Counter(u.kind for u in catalog.urls)
    assert set(BAD_KINDS) <= kinds.keys()
    assert kinds["duplicate"] >= 2
    assert len({u.url for u in catalog.urls}) == len(catalog.urls)
    assert len(catalog.expected_sha256) == len(catalog.good) - sum(
        len(g) - 1 for g in catalog.duplicate_groups.values()
    )
    # The soak must never send a request off this machine, even through a broken SSRF guard.
    for url in [u.url for u in catalog.urls] + [r.redirect for r in image_server.routes.values() if r.redirect]:
        host = urlsplit(url).hostname
        if host is not None:  # a relative redirect stays on the server
            assert ipaddress.ip_address(host).is_loopback, url
    # Comments, blanks, padded repeats and invalid lines are all in the file.
    assert set(INVALID_LINES) <= set(catalog.lines)
    assert "" in catalog.lines
    assert any(line.startswith("#") for line in catalog.lines)
    assert any(line != line.strip() and line.strip() in {u.url for u in catalog.urls} for line in catalog.lines)


@pytest.mark.unit
def test_catalog_is_the_same_for_the_same_seed(image_server: ImageServer) -> None:
    first = build_catalog(image_server, 60, seed=5, prefix="/a")
    second = build_catalog(image_server, 60, seed=5, prefix="/b")
    assert [u.sha256 for u in first.urls] == [u.sha256 for u in second.urls]
    assert [u.kind for u in first.urls] == [u.kind for u in second.urls]


@pytest.mark.unit
def test_chaos_plan_has_every_attack_and_times_the_downloader_by_download_progress() -> None:
    plan = chaos_plan(random.Random(3), indexer_kills=3, embedding_kills=2, downloader_kills=1)
    actions = Counter(event.action for event in plan)
    assert actions == {
        KILL_INDEXER: 3,
        KILL_EMBEDDING: 2,
        POISON: 1,
        RESTART_DOWNLOADER: 1,
        KILL_DOWNLOADER: 1,
        CLOSE_CONNECTIONS: 1,
    }
    for event in plan:
        assert 0 < event.at < 1
        expected_measure = (
            "settled" if event.action in {RESTART_DOWNLOADER, KILL_DOWNLOADER, CLOSE_CONNECTIONS} else "indexed"
        )
        assert event.measure == expected_measure, event


@pytest.mark.unit
def test_poison_messages_are_each_refused_by_the_message_schema_or_name_a_missing_image() -> None:
    bodies = poison_messages()
    assert len(bodies) == 3
    refused = 0
    for body in bodies:
        try:
            message = ImageDownloaded.model_validate_json(body)
        except ValueError:
            refused += 1
        else:
            assert message.path.endswith(".jpg")  # valid, but its file was never stored
    assert refused == 2


@pytest.mark.unit
def test_json_log_reader_finds_urls_reasons_and_line_numbers(tmp_path: Path) -> None:
    log = tmp_path / "downloader.log"
    events = [
        {"level": "WARNING", "message": "x failed", "url": "http://127.0.0.1/x.jpg", "reason": "http_404"},
        {"level": "INFO", "message": "stored", "url": "http://127.0.0.1/y.jpg"},
        {"level": "WARNING", "message": "line 3 skipped", "line": 3, "reason": "invalid_line"},
    ]
    lines = [json.dumps(e) for e in events] + ["===== soak: start #2 of downloader =====", "plain text line", ""]
    log.write_text("\n".join(lines) + "\n")
    read = read_json_log(log)
    assert read.urls_with_reason() == {"http://127.0.0.1/x.jpg"}
    assert read.invalid_line_numbers() == {3}
    assert read.not_json == 1


HOLD_CONNECTION = f"""
import asyncio, aio_pika
async def main():
    connection = await aio_pika.connect({AMQP_URL!r}, client_properties={{"connection_name": "soak-test-child"}})
    closed = asyncio.Event()
    connection.close_callbacks.add(lambda *_: closed.set())
    print("connected", flush=True)
    await closed.wait()  # until the broker closes it
    print("closed", flush=True)
asyncio.run(main())
"""


async def _open_own_connection() -> aio_pika.abc.AbstractConnection:
    return await aio_pika.connect(AMQP_URL, client_properties={"connection_name": "soak-test-own"})


@pytest.mark.integration
def test_close_connections_cuts_only_the_given_processes_connections() -> None:
    require_rabbitmq()
    child = subprocess.Popen([sys.executable, "-c", HOLD_CONNECTION], stdout=subprocess.PIPE, text=True)
    loop = asyncio.new_event_loop()
    own = loop.run_until_complete(_open_own_connection())
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "connected"
        deadline = time.monotonic() + 30
        while not _client_ports([child.pid]) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert close_connections([child.pid], reason="soak test") == 1
        assert child.stdout.readline().strip() == "closed"
        assert child.wait(timeout=30) == 0
        assert not own.is_closed  # this process's connection is untouched
    finally:
        child.kill()
        loop.run_until_complete(own.close())
        loop.close()
