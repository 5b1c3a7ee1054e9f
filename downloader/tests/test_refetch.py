"""`dyimages retry`: failed URLs fetched again by a real downloader process, through the real RabbitMQ.

The CLI runs as its own process and only publishes a request to ``<queue>.control``; the downloader
(watch mode) consumes it and resets the matching failed URLs in its state. Before this, a failed
URL could never be fetched again (adding it to the file again is deduplicated).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aio_pika
import pytest
from pydantic import ValidationError

from downloader.refetch import ControlQueueConsumer
from downloader.state_db import UrlStateStore
from dyimages_common.library.refusal import LibraryRefusal
from dyimages_common.library.state import library_state_path
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.messaging.rabbit import Topology, declare_control_queue
from dyimages_common.reasons import Reason
from dyimages_common.settings import RabbitSettings, load_settings
from dyimages_common.urls import state as url_state
from dyimages_common.urls.refetch import RetryRequest, publish_retry_request_async
from testkit.downloader_state import downloader_env, url_row, wait_for_log, wait_for_row
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import start_module, stop
from testkit.rabbit import AMQP_URL, read_messages, take_messages
from testkit.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


def dyimages(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "search_app.cli.main", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def refused_server() -> Iterator[ImageServer]:
    """A server on 127.0.0.2: a loopback address the downloader's guard refuses unless allowed."""
    with ImageServer(host="127.0.0.2") as server:
        yield server


def test_retry_by_reason_and_by_url_fetches_failed_urls_again(
    tmp_path: Path,
    image_server: ImageServer,
    refused_server: ImageServer,
    rabbit_queue: str,
    fast_env: dict[str, str],
) -> None:
    missing_once = image_server.add("/was-missing.jpg", Route(body=jpeg(1), fail_times=1, fail_status=404))
    refused = refused_server.add("/private.jpg", Route(body=jpeg(2)))
    # QDRANT_PATH is for the CLI's settings; retry never opens it.
    env, state_db = downloader_env(
        tmp_path, rabbit_queue, [missing_once, refused], **fast_env, QDRANT_PATH=str(tmp_path / "qdrant")
    )
    downloader = start_module("downloader", env=env, log_path=tmp_path / "downloader.log")
    try:
        wait_for_row(state_db, missing_once, lambda r: r.status == "failed", "the 404", process=downloader)
        before = wait_for_row(state_db, refused, lambda r: r.status == "failed", "the refusal", process=downloader)
        assert before.last_error.startswith("refused_address: 127.0.0.2")
        assert image_server.hits["/was-missing.jpg"] == 1

        shown = dyimages(env, "failures", "--json")
        assert shown.returncode == 0, shown.stderr
        hints = {row["url"]: row["hint"] for row in json.loads(shown.stdout)["downloads"]}
        assert hints[missing_once] is None
        assert hints[refused].startswith("to fetch it anyway, add 127.0.0.2/32 to DOWNLOADER_ALLOWED_NETWORKS")
        table = dyimages({**env, "COLUMNS": "400"}, "failures").stdout
        assert "add 127.0.0.2/32 to DOWNLOADER_ALLOWED_NETWORKS" in table

        # Added to the file again: known, nothing happens (why retry exists).
        (tmp_path / "urls.txt").write_text(f"{missing_once}\n{refused}\n{missing_once}#again\n")

        result = dyimages(env, "retry", "--reason", "http_404", "--json")
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["schema_version"] == 1
        assert answer["matching"] == 1
        assert answer["matching_urls"] == [missing_once]
        done = wait_for_row(state_db, missing_once, lambda r: r.status == "done", "the retried URL", process=downloader)
        assert done.attempts == 1  # counted from zero again
        assert image_server.hits["/was-missing.jpg"] == 2
        assert url_row(state_db, refused) == before  # another reason: untouched

        nothing = dyimages(env, "retry", "--reason", "http_404")
        assert nothing.returncode == 1
        assert "no failed URL or library file matches" in nothing.stderr

        result = dyimages(env, "retry", "--url", refused, "--json")
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["matching_urls"] == [refused]
        again = wait_for_row(
            state_db,
            refused,
            lambda r: r.status == "failed" and r.updated_at > before.updated_at,
            "the refused URL tried again",
            process=downloader,
        )
        assert again.last_error.startswith("refused_address")  # still not allowed: refused again, not fetched
        assert refused_server.hits["/private.jpg"] == 0
    finally:
        assert stop(downloader) == 0, (tmp_path / "downloader.log").read_text()[-3000:]
    bodies = [ImageDownloaded.model_validate_json(body) for body in read_messages(rabbit_queue, idle_s=1)]
    assert [message.url for message in bodies] == [missing_once]


def test_a_request_made_while_the_downloader_is_stopped_waits_for_it(
    tmp_path: Path, image_server: ImageServer, rabbit_queue: str, fast_env: dict[str, str]
) -> None:
    """The control queue is durable: `dyimages retry` with no downloader running is not lost, and a
    body that is not a retry request is dead-lettered, not retried forever."""
    missing_once = image_server.add("/late.jpg", Route(body=jpeg(3), fail_times=1, fail_status=410))
    env, state_db = downloader_env(tmp_path, rabbit_queue, [missing_once], **fast_env)
    once = subprocess.run(
        [sys.executable, "-m", "downloader", "--once"], env={**os.environ, **env}, capture_output=True, timeout=120
    )
    assert once.returncode == 0, once.stderr[-2000:]
    assert url_row(state_db, missing_once).status == "failed"

    result = dyimages(env, "retry", "--json")  # no downloader runs now
    assert result.returncode == 0, result.stderr
    _publish_raw(rabbit_queue, b'{"not": "a retry request"}')

    downloader = start_module("downloader", env=env, log_path=tmp_path / "downloader.log")
    try:
        wait_for_row(state_db, missing_once, lambda r: r.status == "done", "the waiting request", process=downloader)
    finally:
        assert stop(downloader) == 0
    dead = read_messages(Topology.for_queue(rabbit_queue).dead_letter_queue, idle_s=1)
    assert dead == [b'{"not": "a retry request"}']
    assert read_messages(Topology.for_queue(rabbit_queue).control_queue, idle_s=1) == []
    log = (tmp_path / "downloader.log").read_text()
    assert "neither a retry request nor a library refusal was dead-lettered" in log


def _publish_raw(queue: str, body: bytes) -> None:
    async def publish() -> None:
        connection = await aio_pika.connect(AMQP_URL)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            control = await declare_control_queue(channel, queue)
            await channel.default_exchange.publish(aio_pika.Message(body), routing_key=control.name)

    asyncio.run(publish())


def test_a_retry_request_names_what_it_matches() -> None:
    by_reason = RetryRequest(reason="http_404")
    assert by_reason.matches("u", "http_404: 404 Not Found")
    assert not by_reason.matches("u", "http_4040: odd")
    assert not by_reason.matches("u", "refused_address: 10.0.0.1 is private")
    by_url = RetryRequest(urls=("a", "b"))
    assert by_url.matches("a", "timeout: x")
    assert not by_url.matches("c", "timeout: x")
    assert RetryRequest().matches("anything", None)


def test_a_retry_request_names_a_known_reason_and_old_words_still_match() -> None:
    """Rows written before the reasons were a type stay retryable: ``http_418`` reads as ``http_4xx``,
    a word this version does not know as ``unknown``; a request names a member, nothing else."""
    assert RetryRequest(reason="http_4xx").matches("u", "http_418: 418 I'm a Teapot")
    assert not RetryRequest(reason="http_4xx").matches("u", "http_404: 404 Not Found")
    assert RetryRequest(reason="http_418").reason is Reason.HTTP_4XX  # queued by an older version
    assert RetryRequest(reason="unknown").matches("u", "gremlins: from another version")
    assert RetryRequest(reason="unknown").matches("u", None)
    with pytest.raises(ValidationError):
        RetryRequest(reason="gremlins")


def test_the_downloader_resets_old_rows_by_the_reason_they_read_as(tmp_path: Path) -> None:
    """The downloader's real state: rows recorded by an older version, reset by reason."""
    rows = {"a": "http_418: 418 I'm a Teapot", "b": "http_404: 404 Not Found", "c": "gremlins: ?", "d": None}

    async def reset(reason: str) -> list[str]:
        store = UrlStateStore(tmp_path / "state.sqlite3")
        store.start()
        try:
            await store.add_pending(list(rows))
            for url, error in rows.items():
                store._connection.execute(
                    "UPDATE urls SET status = 'failed', last_error = ? WHERE url = ?", (error, url)
                )
            return await store.reset_failed(RetryRequest(reason=reason).matches)
        finally:
            await store.close()

    assert asyncio.run(reset("http_4xx")) == ["a"]
    assert sorted(asyncio.run(reset("unknown"))) == ["c", "d"]
    assert asyncio.run(reset("http_404")) == ["b"]


def test_a_retry_request_is_matched_off_the_event_loop_against_a_set_of_its_urls(tmp_path: Path) -> None:
    """Each failed row is checked on the state's own thread (never the loop the downloads run on), and a
    request's URLs are looked up as a set."""
    urls = [f"https://set.example/{n}.jpg" for n in range(200)]
    request = RetryRequest(urls=tuple(urls[::2]))
    checked_on: set[str] = set()

    def matches(url: str, last_error: str | None) -> bool:
        checked_on.add(threading.current_thread().name)
        return request.matches(url, last_error)

    async def reset() -> tuple[list[str], str]:
        store = UrlStateStore(tmp_path / "state.sqlite3")
        store.start()
        try:
            await store.add_pending(urls)
            store._connection.execute("UPDATE urls SET status = 'failed', last_error = 'http_404: gone'")
            return await store.reset_failed(matches), threading.current_thread().name
        finally:
            await store.close()

    reset_urls, loop_thread = asyncio.run(reset())
    assert sorted(reset_urls) == sorted(urls[::2])
    assert checked_on
    assert loop_thread not in checked_on
    assert isinstance(request._url_set, frozenset)
    assert request._url_set == frozenset(urls[::2])


def test_retry_requests_are_taken_after_the_broker_was_away_and_dropped(
    tmp_path: Path, image_server: ImageServer, rabbit_queue: str, fast_env: dict[str, str]
) -> None:
    """The control queue's consumer waits for a broker that is away at start, and consumes again after
    its connection is cut (the robust connection), while the downloader goes on downloading."""
    gone = image_server.add("/gone-then-back.jpg", Route(body=jpeg(4), fail_times=1, fail_status=404))
    cli_env, state_db = downloader_env(tmp_path, rabbit_queue, [gone], **fast_env)
    with TcpProxy("127.0.0.1", int(cli_env["RABBITMQ_PORT"])) as broker:
        env = {**cli_env, "RABBITMQ_PORT": str(broker.port)}
        downloader = start_module("downloader", env=env, log_path=tmp_path / "downloader.log")
        try:
            wait_for_row(state_db, gone, lambda r: r.status == "failed", "the 404 (broker away)", process=downloader)
            broker.open()
            wait_for_log(tmp_path / "downloader.log", "taking retry requests from")
            broker.drop()  # cut both of the downloader's connections
            broker.open()
            result = dyimages(cli_env, "retry", "--url", gone)  # straight to the broker; waits there if need be
            assert result.returncode == 0, result.stderr
            wait_for_row(state_db, gone, lambda r: r.status == "done", "the retry after the drop", process=downloader)
        finally:
            assert stop(downloader) == 0, (tmp_path / "downloader.log").read_text()[-3000:]


@pytest.mark.parametrize("which", ["urls", "library"])
def test_a_state_the_cli_cannot_read_still_sends_the_request(tmp_path: Path, rabbit_queue: str, which: str) -> None:
    """Where the CLI cannot read the downloader's state (another machine, a broken file), it says so and
    sends the request anyway: the downloader, which can, decides what matches. Either state: the URLs'
    or the photo library's beside it."""
    state = tmp_path / "state.sqlite3"
    if which == "library":
        url_state.open_state(state).close()  # a good URL state, with nothing failed
    broken = state if which == "urls" else library_state_path(state)
    broken.write_bytes(b"this is not a SQLite database" * 100)
    env, _ = downloader_env(tmp_path, rabbit_queue, [], STATE_DB=str(state))
    result = dyimages(env, "retry", "--reason", "timeout", "--json")
    assert result.returncode == 0, result.stderr
    answer = json.loads(result.stdout)
    assert answer["matching"] is None
    assert answer["state_error"].startswith(f"cannot read the downloader state {state}")
    assert "cannot read the downloader state" in result.stderr
    queued = read_messages(Topology.for_queue(rabbit_queue).control_queue, idle_s=1)
    assert [RetryRequest.model_validate_json(body).reason for body in queued] == ["timeout"]


async def test_a_request_is_acknowledged_only_after_it_was_applied(
    rabbit_queue: str, rabbit_environment: dict[str, str]
) -> None:
    """A reset that fails (a broken disk) leaves the request in the queue; it is applied on redelivery."""
    settings = load_settings(RabbitSettings)
    applied: list[str] = []

    async def apply(request: RetryRequest) -> list[str]:
        applied.append(request.request_id)
        if len(applied) == 1:
            raise OSError("disk I/O error")
        return []

    request = RetryRequest(urls=("https://x.example/a.jpg",))
    await publish_retry_request_async(settings, request)
    handler = Handler(apply, _no_refusal)
    consumer = asyncio.create_task(ControlQueueConsumer(settings, handler, retry_max_s=0.5).run())
    try:
        for _ in range(200):
            if len(applied) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    assert applied == [request.request_id, request.request_id]
    assert await take_messages(Topology.for_queue(rabbit_queue).control_queue, idle_s=0.5) == []


@dataclass
class Handler:
    """The downloader's side of the control queue, as two functions."""

    retry_failed: Callable[[RetryRequest], Awaitable[list[str]]]
    refuse_library_files: Callable[[LibraryRefusal], Awaitable[list[str]]]


async def _no_refusal(refusal: LibraryRefusal) -> list[str]:
    raise AssertionError(f"no library refusal was sent, yet one came: {refusal}")


@pytest.mark.integration
async def test_a_library_refusal_is_applied_and_acknowledged_only_after(
    rabbit_queue: str, rabbit_environment: dict[str, str]
) -> None:
    """The indexer's refusal of a library photo reaches ``refuse``, not ``apply``; a failing first try
    leaves it in the queue and it is applied on redelivery."""
    settings = load_settings(RabbitSettings)
    refused: list[LibraryRefusal] = []

    async def apply(request: RetryRequest) -> list[str]:
        raise AssertionError(f"a refusal was read as a retry request: {request}")

    async def refuse(refusal: LibraryRefusal) -> list[str]:
        refused.append(refusal)
        if len(refused) == 1:
            raise OSError("disk I/O error")
        return list(refusal.paths)

    refusal = LibraryRefusal.of("ab" * 32, ("2024/IMG_0001.jpg",), Reason.CORRUPT_IMAGE, "broken data stream")
    await asyncio.to_thread(_publish_raw, rabbit_queue, refusal.model_dump_json().encode())
    consumer = asyncio.create_task(ControlQueueConsumer(settings, Handler(apply, refuse), retry_max_s=0.5).run())
    try:
        for _ in range(200):
            if len(refused) >= 2:
                break
            await asyncio.sleep(0.05)
    finally:
        consumer.cancel()
        await asyncio.gather(consumer, return_exceptions=True)
    assert refused == [refusal, refusal]
    assert await take_messages(Topology.for_queue(rabbit_queue).control_queue, idle_s=0.5) == []
