"""Every case a URL file can hold, in one ``--once`` run against a local HTTP server and the real
RabbitMQ; each test below checks one case's outcome (files, state, messages, server hits)."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from prometheus_client import REGISTRY

from downloader.service import Downloader
from downloader.settings import DownloaderSettings
from dyimages_common.images.storage import sha256_hex
from dyimages_common.messaging.messages import ImageDownloaded
from dyimages_common.reasons import Reason
from dyimages_common.urls.state import recent_failures, status_counts, urls_for
from testkit.http_server import ImageServer, Route
from testkit.images import encode, gif, jpeg, png, webp
from testkit.rabbit import delete_topology, rabbit_env, read_messages, require_rabbitmq, unique_queue_name

pytestmark = pytest.mark.integration

MAX_BYTES = 60_000
MAX_PIXELS = 1_000_000

GOOD = {
    "/good.jpg": (jpeg(1), "image/jpeg", "jpg"),
    "/good.png": (png(2), "image/png", "png"),
    "/good.webp": (webp(3), "image/webp", "webp"),
    # Declared as something else: the real format decides.
    "/good-gif": (gif(4), "application/octet-stream", "gif"),
}
BIG_NOISE_JPEG = jpeg(9, size=(400, 300), quality=100)
assert len(BIG_NOISE_JPEG) > MAX_BYTES


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@dataclass
class Run:
    server: ImageServer
    refused_servers: list[ImageServer]
    tmp: Path
    images_dir: Path
    state_db: Path
    messages: list[ImageDownloaded]
    logs: list[str]

    def url(self, path: str) -> str:
        return self.server.url(path)

    def state(self, path: str) -> tuple[str, int, str | None]:
        with sqlite3.connect(self.state_db) as connection:
            row = connection.execute(
                "SELECT status, attempts, last_error FROM urls WHERE url = ?", (self.url(path),)
            ).fetchone()
        assert row is not None, f"{path} has no state"
        return row


def _routes(server: ImageServer, refused_url: str, refused_v6_url: str) -> None:
    for path, (body, content_type, _) in GOOD.items():
        server.add(path, Route(body=body, content_type=content_type))
    server.add("/same-bytes-1.jpg", Route(body=jpeg(5)))
    server.add("/same-bytes-2.jpg", Route(body=jpeg(5)))
    server.add("/flaky.jpg", Route(body=jpeg(6), fail_times=1, fail_status=500))
    server.add("/busy.jpg", Route(body=jpeg(7), fail_times=1, fail_status=429, retry_after="1"))
    server.add("/always-503.jpg", Route(body=jpeg(8), fail_times=99, fail_status=503))
    server.add("/slow.jpg", Route(body=jpeg(10), delay=3.0))
    server.add("/slow-body.jpg", Route(body=jpeg(11, size=(200, 150)), drip=0.5))
    server.add("/page.jpg", Route(body=b"<!doctype html><html><body>hello</body></html>", content_type="image/jpeg"))
    truncated = jpeg(12, size=(320, 240))
    server.add("/truncated.jpg", Route(body=truncated[: len(truncated) // 2]))
    bomb = encode(Image.new("RGB", (2000, 2000), (200, 30, 30)), "PNG", optimize=True)  # 4 Mpx in a few KB
    assert len(bomb) < MAX_BYTES
    server.add("/bomb.png", Route(body=bomb, content_type="image/png"))
    server.add("/big.jpg", Route(body=BIG_NOISE_JPEG))
    server.add("/big-chunked.jpg", Route(body=BIG_NOISE_JPEG, drip=0.0005))  # no Content-Length
    server.add("/loop-a", Route(redirect="/loop-b"))
    server.add("/loop-b", Route(redirect="/loop-a"))
    server.add("/hop-1", Route(redirect="/hop-2"))
    server.add("/hop-2", Route(redirect=server.url("/good-redirected.jpg")))
    server.add("/good-redirected.jpg", Route(body=jpeg(14)))
    server.add("/chain-1", Route(redirect="/chain-2"))
    server.add("/chain-2", Route(redirect="/chain-3"))
    server.add("/chain-3", Route(redirect="/chain-4"))
    server.add("/chain-4", Route(redirect="/chain-5"))
    server.add("/chain-5", Route(body=jpeg(15)))
    server.add("/to-refused", Route(redirect=refused_url))
    server.add("/to-ipv6-loopback", Route(redirect=refused_v6_url))
    server.add("/teapot.jpg", Route(status=418, body=b"short and stout", content_type="text/plain"))


def _url_file(server: ImageServer) -> str:
    lines = [
        "# images for the test",
        "",
        *(f"  {server.url(path)}  " for path in GOOD),
        server.url("/good.jpg"),  # the same URL again: fetched once
        server.url("/good.jpg#fragment"),  # the same resource
        server.url("/same-bytes-1.jpg"),
        server.url("/same-bytes-2.jpg") + "   # a trailing comment",
        server.url("/missing.jpg"),
        server.url("/flaky.jpg"),
        server.url("/busy.jpg"),
        server.url("/always-503.jpg"),
        server.url("/slow.jpg"),
        server.url("/slow-body.jpg"),
        server.url("/page.jpg"),
        server.url("/truncated.jpg"),
        server.url("/bomb.png"),
        server.url("/big.jpg"),
        server.url("/big-chunked.jpg"),
        server.url("/loop-a"),
        server.url("/hop-1"),
        server.url("/chain-1"),
        server.url("/to-refused"),
        server.url("/to-ipv6-loopback"),
        "ftp://example.invalid/a.jpg",
        "just some words",
        "http://",
        "\t",
        server.url("/teapot.jpg"),  # last: the invalid lines keep their numbers
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, settings_for: Callable[..., DownloaderSettings]) -> Iterator[Run]:
    require_rabbitmq()
    queue = unique_queue_name("downloader")
    tmp = tmp_path_factory.mktemp("downloads")
    records = _Records()
    logging.getLogger().addHandler(records)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.INFO)
    try:
        # A second server on another loopback address: a guard that let the redirect through
        # would fetch a valid image from it (and its hit counter would show it).
        with (
            ImageServer() as server,
            ImageServer(host="127.0.0.2") as refused_server,
            ImageServer(host="::1") as refused_v6_server,
        ):
            refused_server.add("/secret.jpg", Route(body=jpeg(99)))
            refused_v6_server.add("/secret.jpg", Route(body=jpeg(98)))
            _routes(server, refused_server.url("/secret.jpg"), refused_v6_server.url("/secret.jpg"))
            (tmp / "urls.txt").write_text(_url_file(server))
            settings = settings_for(tmp, rabbit_env(queue), max_image_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS)
            asyncio.run(Downloader(settings).run(once=True))
            bodies = read_messages(queue, idle_s=1.0)
            yield Run(
                server=server,
                refused_servers=[refused_server, refused_v6_server],
                tmp=tmp,
                images_dir=settings.images_dir,
                state_db=settings.state_db_path,
                messages=[ImageDownloaded.model_validate_json(body) for body in bodies],
                logs=records.messages,
            )
    finally:
        logging.getLogger().removeHandler(records)
        logging.getLogger().setLevel(previous_level)
        delete_topology(queue)


def _stored_files(images_dir: Path) -> list[Path]:
    return [p for p in images_dir.rglob("*") if p.is_file() and ".state" not in p.parts]


def test_good_images_are_stored_by_content_with_their_real_format(run: Run) -> None:
    for path, (body, _, extension) in GOOD.items():
        sha = sha256_hex(body)
        stored = run.images_dir / sha[:2] / sha[2:4] / f"{sha}.{extension}"
        assert stored.read_bytes() == body, path
        assert run.state(path)[0] == "done"


def test_one_message_per_source_url_and_it_matches_the_file(run: Run) -> None:
    files = _stored_files(run.images_dir)
    assert len(run.messages) == len(files) + 1  # the second URL of the same bytes has its own message
    assert len({m.url for m in run.messages}) == len(run.messages)
    assert {m.sha256 for m in run.messages} == {f.name.split(".")[0] for f in files}
    by_url = {m.url: m for m in run.messages}
    message = by_url[run.url("/good.png")]
    assert (message.content_type, message.width, message.height) == ("image/png", 64, 48)
    assert message.bytes == len(GOOD["/good.png"][0])
    assert (run.images_dir / message.path).read_bytes() == GOOD["/good.png"][0]
    assert by_url[run.url("/good-gif")].content_type == "image/gif"


def test_every_message_is_marked_published(run: Run) -> None:
    with sqlite3.connect(run.state_db) as connection:
        unpublished = connection.execute("SELECT url FROM urls WHERE status = 'done' AND published = 0").fetchall()
    assert unpublished == []


def test_the_same_url_twice_is_fetched_once(run: Run) -> None:
    assert run.server.hits["/good.jpg"] == 1


def test_same_bytes_at_two_urls_make_one_file_and_one_message_per_url(run: Run) -> None:
    """One stored file; a message for each source URL, so the indexer's one point lists both."""
    sha = sha256_hex(jpeg(5))
    assert sum(1 for f in _stored_files(run.images_dir) if f.name.startswith(sha)) == 1
    messages = [m for m in run.messages if m.sha256 == sha]
    assert sorted(m.url for m in messages) == sorted([run.url("/same-bytes-1.jpg"), run.url("/same-bytes-2.jpg")])
    assert len({m.path for m in messages}) == 1
    # Both URLs are recorded as sources of the image (the reindex path reads them).
    assert urls_for(run.state_db, sha) == sorted([run.url("/same-bytes-1.jpg"), run.url("/same-bytes-2.jpg")])


def test_not_found_is_recorded_once_with_its_reason(run: Run) -> None:
    status, attempts, error = run.state("/missing.jpg")
    assert (status, attempts) == ("failed", 1)
    assert error.startswith("http_404")
    assert run.server.hits["/missing.jpg"] == 1
    assert any(run.url("/missing.jpg") in line and "http_404" in line for line in run.logs)


def test_server_error_then_success_is_retried(run: Run) -> None:
    assert run.state("/flaky.jpg")[:2] == ("done", 2)
    assert run.server.hits["/flaky.jpg"] == 2


def test_too_many_requests_waits_for_retry_after(run: Run) -> None:
    assert run.state("/busy.jpg")[:2] == ("done", 2)
    first, second = run.server.hit_times["/busy.jpg"]
    assert second - first >= 1.0  # Retry-After: 1 was honoured (backoff alone is 0.05 s)


def test_persistent_server_errors_give_up_after_the_attempt_limit(run: Run) -> None:
    status, attempts, error = run.state("/always-503.jpg")
    assert (status, attempts) == ("failed", 3)
    assert error.startswith("http_503")
    assert run.server.hits["/always-503.jpg"] == 3


@pytest.mark.parametrize("path", ["/slow.jpg", "/slow-body.jpg"])
def test_slow_servers_time_out(run: Run, path: str) -> None:
    status, attempts, error = run.state(path)
    assert (status, attempts) == ("failed", 3)
    assert error.startswith("timeout")


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/page.jpg", "not_an_image"),
        ("/truncated.jpg", "corrupt_image"),
        ("/bomb.png", "too_many_pixels"),
        ("/big.jpg", "too_large"),
        ("/big-chunked.jpg", "too_large"),
        ("/loop-a", "redirect_loop"),
        ("/chain-1", "too_many_redirects"),
        ("/to-refused", "refused_address"),
        ("/to-ipv6-loopback", "refused_address"),
    ],
)
def test_bad_urls_fail_for_good_with_a_reason(run: Run, path: str, reason: str) -> None:
    status, attempts, error = run.state(path)
    assert (status, attempts) == ("failed", 1)
    assert error.split(":")[0] == reason
    assert any(run.url(path) in line and reason in line for line in run.logs)


def test_a_status_without_its_own_reason_is_recorded_as_its_class_with_the_status(run: Run) -> None:
    status, attempts, error = run.state("/teapot.jpg")
    assert (status, attempts) == ("failed", 1)
    assert error.startswith("http_4xx: 418 ")


def test_every_recorded_reason_is_a_reason(run: Run) -> None:
    """Every word the downloader wrote first in ``last_error`` is a member, not merely one ``parse``
    can map (an old-style ``http_418`` would read back, but must no longer be written)."""
    with sqlite3.connect(run.state_db) as connection:
        errors = [row[0] for row in connection.execute("SELECT last_error FROM urls WHERE status = 'failed'")]
    assert len(errors) == 14
    words = {error.split(":", 1)[0] for error in errors}
    assert words <= {reason.value for reason in Reason}, words - {reason.value for reason in Reason}
    walked = {"http_404", "http_503", "http_4xx", "timeout", "not_an_image", "corrupt_image", "too_many_pixels"}
    assert walked | {"too_large", "redirect_loop", "too_many_redirects", "refused_address"} <= words


def test_redirect_to_a_refused_address_never_reaches_it(run: Run) -> None:
    assert [s.hits["/secret.jpg"] for s in run.refused_servers] == [0, 0]
    assert "127.0.0.2 is loopback" in run.state("/to-refused")[2]
    assert "::1 is loopback" in run.state("/to-ipv6-loopback")[2]


def test_redirects_within_the_limit_are_followed_and_the_source_url_kept(run: Run) -> None:
    assert run.state("/hop-1")[0] == "done"
    assert any(m.url == run.url("/hop-1") for m in run.messages)


def test_comments_blank_and_invalid_lines(run: Run) -> None:
    counts = status_counts(run.state_db)
    known = sum(counts.values())
    # 4 good + 2 same-bytes + 17 other distinct URLs; comments, blanks, invalid lines and repeats add none.
    assert known == 4 + 2 + 17
    failures = {f.url for f in recent_failures(run.state_db)}
    assert not any(url.startswith("ftp") for url in failures)
    for number in (27, 28, 29):  # the three invalid lines, by line number
        assert any(f"line {number} skipped" in line for line in run.logs), number


def test_no_temporary_or_partial_files_remain(run: Run) -> None:
    leftovers = [p for p in _stored_files(run.images_dir) if p.name.startswith(".tmp-") or p.suffix == ".part"]
    assert leftovers == []
    # 4 good, 1 for the same bytes at two URLs, flaky, busy and the redirected one.
    assert len(_stored_files(run.images_dir)) == 4 + 1 + 3


def test_metrics_count_downloads_failures_and_messages(run: Run) -> None:
    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    # Process-wide counters: other tests in this process may add to them, never take away.
    assert value("dyimages_downloader_downloaded_total") >= 9
    assert value("dyimages_downloader_published_total") >= 9
    assert value("dyimages_downloader_failed_total", reason="http_404") >= 1
    assert value("dyimages_downloader_failed_total", reason="refused_address") >= 2
    assert value("dyimages_downloader_download_seconds_count") >= 9
    assert value("dyimages_downloader_urls", status="done") == 9
    assert value("dyimages_downloader_urls", status="failed") == 14
    assert value("dyimages_downloader_urls", status="pending") == 0
    failed = next(metric for metric in REGISTRY.collect() if metric.name == "dyimages_downloader_failed")
    labels = {sample.labels["reason"] for sample in failed.samples}
    assert "http_4xx" in labels
    assert labels <= {reason.value for reason in Reason}
