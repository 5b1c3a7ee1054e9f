"""Client and server timeouts agree, from one setting: the real service derives its request timeout
from the clients' EMBEDDING_TIMEOUT_S (half of it), so it never computes a batch its client has
given up on. That the serving loop then answers 504 instead of computing is tested in test_loop.py."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from dyimages_common.embeddings.wire import server_request_timeout
from embedding.server import LITSERVE_INFO_PATH
from testkit.embedding import run_embedding_service

pytestmark = pytest.mark.integration


def test_the_service_times_requests_out_at_half_the_clients_timeout(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    with run_embedding_service(tmp_path / "images", tmp_path, EMBEDDING_TIMEOUT_S="30") as service:
        server = httpx.get(service.url + LITSERVE_INFO_PATH, timeout=10).json()["server"]
    assert server["timeout"] == server_request_timeout(30) == 15
