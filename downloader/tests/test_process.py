"""``python -m downloader`` as a real process: its command line, settings errors, logs, a restart in
the middle of the work, and RabbitMQ being away at start and coming back."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from dyimages_common.images.storage import sha256_hex
from dyimages_common.messaging.messages import ImageDownloaded
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import start_module, stop
from testkit.rabbit import read_messages
from testkit.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@pytest.fixture
def env(tmp_path: Path, rabbit_environment: dict[str, str], fast_env: dict[str, str]) -> dict[str, str]:
    """The environment of a downloader process working in ``tmp_path`` on this test's queue."""
    return {
        **rabbit_environment,
        **fast_env,
        "URLS_FILE": str(tmp_path / "urls.txt"),
        "IMAGES_DIR": str(tmp_path / "images"),
        "METRICS_PORT": "0",
    }


def _run(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "downloader", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _rows(tmp: Path) -> dict[str, tuple[str, int]]:
    """url -> (status, published), read the way the app reads it (read-only)."""
    db = tmp / "images" / ".state" / "downloader.sqlite3"
    if not db.exists():
        return {}
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as connection:
        if connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'urls'").fetchone() is None:
            return {}  # created, the table not yet
        return {
            url: (status, published)
            for url, status, published in connection.execute("SELECT url, status, published FROM urls")
        }


def _until(condition: Callable[[], bool], what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"not reached: {what}; the downloader's log:\n{log.read_text()[-6000:]}")
        time.sleep(0.05)


def _stored_files(tmp: Path) -> list[Path]:
    return [p for p in (tmp / "images").rglob("*") if p.is_file() and ".state" not in p.parts]


@pytest.mark.unit
def test_help_names_the_once_flag() -> None:
    result = _run(["--help"], {})
    assert result.returncode == 0
    assert "--once" in result.stdout


@pytest.mark.unit
@pytest.mark.parametrize(
    ("variable", "value"),
    [("DOWNLOADER_CONCURRENCY", "many"), ("DOWNLOADER_ALLOWED_NETWORKS", "10.0.0.0/33"), ("DOWNLOADER_POLL_S", "0")],
)
def test_a_bad_setting_stops_start_up_with_one_clear_line(tmp_path: Path, variable: str, value: str) -> None:
    result = _run(["--once"], {"URLS_FILE": str(tmp_path / "urls.txt"), variable: value})
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"configuration error: {variable}=")


def test_once_without_a_url_file_fails(env: dict[str, str]) -> None:
    result = _run(["--once"], env)
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_once_exits_zero_despite_bad_urls_and_logs_json(
    tmp_path: Path,
    image_server: ImageServer,
    rabbit_queue: str,
    env: dict[str, str],
) -> None:
    good = image_server.add("/good.jpg", Route(body=jpeg(1)))
    (tmp_path / "urls.txt").write_text(f"{good}\n{image_server.url('/missing.jpg')}\nnot-a-url\n")
    result = _run(["--once"], {**env, "LOG_FORMAT": "json"})
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stderr.splitlines()]
    failure = next(r for r in records if r.get("reason") == "http_404")
    assert (failure["level"], failure["url"], failure["service"]) == (
        "WARNING",
        image_server.url("/missing.jpg"),
        "downloader",
    )
    assert any(r.get("line") == 3 for r in records)
    assert records[-1]["message"].startswith("final: pending 0, retrying 0, done 1, failed 1")
    assert len(read_messages(rabbit_queue)) == 1


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_a_restart_in_the_middle_downloads_nothing_twice_and_loses_nothing(
    tmp_path: Path,
    image_server: ImageServer,
    rabbit_queue: str,
    env: dict[str, str],
    sig: signal.Signals,
) -> None:
    bodies = {f"/{i}.jpg": jpeg(100 + i) for i in range(40)}
    urls = [image_server.add(path, Route(body=body, delay=0.2)) for path, body in bodies.items()]
    (tmp_path / "urls.txt").write_text("\n".join(urls) + "\n")
    env = {**env, "DOWNLOADER_CONCURRENCY": "4", "DOWNLOADER_PER_HOST": "4"}

    first = start_module("downloader", "--once", env=env, log_path=tmp_path / "first.log")
    try:
        _until(
            lambda: sum(s == "done" for s, _ in _rows(tmp_path).values()) >= 8,
            "some URLs done",
            first,
            tmp_path / "first.log",
        )
    finally:
        code = stop(first, sig)
    if sig == signal.SIGTERM:
        assert code == 0, (tmp_path / "first.log").read_text()
        assert not [p for p in _stored_files(tmp_path) if p.name.startswith(".tmp-")]
    if sig == signal.SIGKILL:  # what a kill in the middle of a write leaves: a temporary file
        leftover = tmp_path / "images" / "ab" / "cd" / ".tmp-killed.part"
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half an image")
        os.utime(leftover, (time.time() - 3600, time.time() - 3600))
    done_before = {url for url, (status, _) in _rows(tmp_path).items() if status == "done"}
    assert 8 <= len(done_before) < len(urls)

    second = _run(["--once"], env)
    assert second.returncode == 0, second.stderr

    rows = _rows(tmp_path)
    assert all(rows[url] == ("done", 1) for url in urls)
    for url in done_before:  # nothing done is fetched again
        assert image_server.hits[url.removeprefix(image_server.url(""))] == 1, url
    messages = [ImageDownloaded.model_validate_json(body) for body in read_messages(rabbit_queue)]
    expected = {sha256_hex(body) for body in bodies.values()}
    assert {m.sha256 for m in messages} == expected  # nothing lost
    if sig == signal.SIGTERM:
        assert len(messages) == len(expected)  # and, after a clean stop, nothing sent twice
    assert {p.name.split(".")[0] for p in _stored_files(tmp_path)} == expected  # and no temporary files


def test_rabbitmq_away_at_start_and_during_the_run(
    tmp_path: Path,
    image_server: ImageServer,
    rabbit_queue: str,
    env: dict[str, str],
) -> None:
    first = {f"/first-{i}.jpg": jpeg(200 + i) for i in range(5)}
    later = {f"/later-{i}.jpg": jpeg(300 + i) for i in range(5)}
    for path, body in {**first, **later}.items():
        image_server.add(path, Route(body=body))
    url_file = tmp_path / "urls.txt"
    url_file.write_text("".join(f"{image_server.url(p)}\n" for p in first))

    with TcpProxy("127.0.0.1", int(env["RABBITMQ_PORT"])) as broker:
        env = {**env, "RABBITMQ_PORT": str(broker.port)}
        log = tmp_path / "downloader.log"
        process = start_module("downloader", env=env, log_path=log)
        try:
            # Nothing listens on the broker's port: downloads go on, messages wait.
            _until(lambda: [s for s, _ in _rows(tmp_path).values()] == ["done"] * 5, "downloads", process, log)
            time.sleep(1.0)  # several connection attempts fail meanwhile
            assert all(published == 0 for _, published in _rows(tmp_path).values())
            broker.open()
            _until(lambda: all(p == 1 for _, p in _rows(tmp_path).values()), "published after start", process, log)

            broker.drop()  # the broker goes away in the middle of the run
            with url_file.open("a") as handle:
                handle.write("".join(f"{image_server.url(p)}\n" for p in later))
            _until(lambda: sum(s == "done" for s, _ in _rows(tmp_path).values()) == 10, "more downloads", process, log)
            broker.open()
            _until(lambda: all(p == 1 for _, p in _rows(tmp_path).values()), "published after return", process, log)
        finally:
            code = stop(process)
    text = log.read_text()
    assert code == 0, text[-6000:]
    assert "is not reachable" in text  # it did find the broker away, and said so
    messages = [ImageDownloaded.model_validate_json(body) for body in read_messages(rabbit_queue)]
    assert sorted(m.sha256 for m in messages) == sorted(sha256_hex(b) for b in {**first, **later}.values()), text[
        -6000:
    ]
