"""The HTTP API behind the proxy (deploy/proxy with Debian's nginx, the real API process): the same
password as the UI, or API_TOKEN as a bearer token for programs; the API itself is handed the token, never
the password; its own rate limit; without API_TOKEN no bearer header gets past the password."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from testkit.api_server import api_server
from testkit.embedding import EmbeddingService
from testkit.indexed_library import library_env
from testkit.proxy import PASSWORD, USER, running_proxy
from testkit.rabbit import rabbit_env, unique_queue_name

pytestmark = pytest.mark.integration

TOKEN = "proxy-test-token-0123456789abcdef"
NO_UI = "127.0.0.1:9"  # these tests ask only /api/: the UI's upstream is never reached
PLAIN = {"PROXY_ALLOW_PLAIN_HTTP": "true"}  # no certificate in these tests


@pytest.fixture(scope="module")
def api_env(
    tmp_path_factory: pytest.TempPathFactory, shared_images_dir: Path, embedding_service: EmbeddingService
) -> dict[str, str]:
    """An API over an empty index of its own (searches answer 200 with no results)."""
    tmp_path = tmp_path_factory.mktemp("proxy-api")
    return library_env(
        images_dir=shared_images_dir,
        qdrant_path=tmp_path / "qdrant",
        state_db=tmp_path / "state.sqlite3",
        queue_env=rabbit_env(unique_queue_name("proxy-api")),
        embedding_url=embedding_service.url,
    )


@pytest.fixture(scope="module")
def token_api(api_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with api_server({**api_env, "API_TOKEN": TOKEN}, tmp_path_factory.mktemp("api") / "api.log") as url:
        yield url.removeprefix("http://")


def search(base: str, **request: object) -> httpx.Response:
    return httpx.get(f"{base}/api/v1/search", params={"q": "a red picture"}, timeout=30, **request)  # type: ignore[arg-type]


def test_the_password_or_the_token_and_the_api_gets_the_token(token_api: str) -> None:
    with running_proxy(NO_UI, **PLAIN, PROXY_API_UPSTREAM=token_api, API_TOKEN=TOKEN, PROXY_API_RATE="600r/m") as proxy:
        refused = search(proxy.url)
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"].startswith("Basic")
        assert search(proxy.url, headers={"Authorization": "Bearer not-the-token-at-all-0000000"}).status_code == 401
        by_password = search(proxy.url, auth=(USER, PASSWORD))  # reaches the API only as Bearer API_TOKEN
        assert by_password.status_code == 200, by_password.text
        assert by_password.json()["results"] == []
        by_token = search(proxy.url, headers={"Authorization": f"Bearer {TOKEN}"})
        assert by_token.status_code == 200, by_token.text
    direct = search(f"http://{token_api}", auth=(USER, PASSWORD))
    assert direct.status_code == 401  # the API never accepts the password itself


def test_the_api_has_its_own_rate_limit(token_api: str) -> None:
    with running_proxy(
        NO_UI, **PLAIN, PROXY_API_UPSTREAM=token_api, API_TOKEN=TOKEN, PROXY_API_RATE="1r/m", PROXY_API_BURST="1"
    ) as proxy:
        codes = [search(proxy.url, auth=(USER, PASSWORD)).status_code for _ in range(4)]
    assert codes[:2] == [200, 200]
    assert codes[2:] == [429, 429]


def test_without_api_token_a_bearer_header_does_not_pass(api_env: dict[str, str], tmp_path: Path) -> None:
    with (
        api_server({**api_env, "QDRANT_PATH": str(tmp_path / "qdrant")}, tmp_path / "api.log") as url,
        running_proxy(NO_UI, **PLAIN, PROXY_API_UPSTREAM=url.removeprefix("http://")) as proxy,
    ):
        assert search(proxy.url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 401
        assert search(proxy.url, auth=(USER, PASSWORD)).status_code == 200


def test_a_malformed_api_token_stops_the_proxy(token_api: str) -> None:
    with pytest.raises(RuntimeError, match="API_TOKEN must be 24 or more"):  # noqa: SIM117
        with running_proxy(NO_UI, **PLAIN, PROXY_API_UPSTREAM=token_api, API_TOKEN='short"; deny all; #'):
            pass
