"""With LOG_FORMAT=json a crash is one JSON log line, traceback inside — never a multi-line traceback box.

Real processes crash for real: the downloader on a state database it cannot create, the indexer on
a QDRANT_PATH it cannot create (the tests run as root, so "cannot write" is made by putting the path
under a regular file: NotADirectoryError, the same unhandled OSError a read-only volume gives).
Every line the process writes to stderr must parse as JSON, and the crash record must carry the
exception and its traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from testkit.embedding import EmbeddingService

pytestmark = pytest.mark.integration


def _run_until_crash(module: str, env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    result = subprocess.run(
        [sys.executable, "-m", module, *args],
        env={**os.environ, **env, "LOG_FORMAT": "json"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:
            pytest.fail(f"{module}: a stderr line is not JSON: {line!r}\nall stderr:\n{result.stderr}")
    return result.returncode, records


def _crash_record(records: list[dict[str, Any]], exception: str) -> dict[str, Any]:
    crashes = [r for r in records if r.get("level") == "CRITICAL" and r.get("exception") == exception]
    assert len(crashes) == 1, records
    crash = crashes[0]
    assert "Traceback (most recent call last)" in crash["exc_info"]
    assert exception in crash["exc_info"]
    return crash


def test_a_downloader_crash_is_one_json_line(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {
        "URLS_FILE": str(tmp_path / "urls.txt"),
        "IMAGES_DIR": str(tmp_path / "images"),
        "STATE_DB": str(blocker / "state" / "downloader.sqlite3"),
        "RABBITMQ_HOST": "127.0.0.1",
    }
    code, records = _run_until_crash("downloader", env, "--once")
    assert code == 1
    crash = _crash_record(records, "NotADirectoryError")
    assert crash["service"] == "downloader"
    assert str(blocker) in crash["message"]


def test_an_indexer_crash_is_one_json_line(tmp_path: Path, embedding_service: EmbeddingService) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {
        "EMBEDDING_SERVICE_URL": embedding_service.url,
        "QDRANT_PATH": str(blocker / "qdrant"),
        "RABBITMQ_HOST": "127.0.0.1",
        "INDEXER_RETRY_MAX_S": "1",
    }
    code, records = _run_until_crash("indexer", env, "--exit-when-idle")
    assert code == 1
    crash = _crash_record(records, "NotADirectoryError")
    assert crash["service"] == "indexer"
    assert any(r.get("message", "").startswith("embedding service runs") for r in records), "it got that far"
