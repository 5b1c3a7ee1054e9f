"""The HTTP API as deployed (``python -m search_app.api``, a real uvicorn process) over the library indexed by
the real indexer and embedding service, with the real Redis query cache: what it answers, the same hits as
``dyimages search --json``, and how it refuses what it cannot do."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image

from testkit.api_server import api_server
from testkit.app_driver import search_json
from testkit.indexed_library import Library
from testkit.procs import free_port

pytestmark = pytest.mark.integration

REDIS_URL = "redis://127.0.0.1:6379/0"  # the shared server; these tests fail when it is not running
UPLOAD_LIMIT = 256 * 1024
TOKEN = "a-test-token-of-thirty-two-chars"
METRICS = free_port()


@pytest.fixture(scope="module")
def expected(library: Library, monkeypatch_module: pytest.MonkeyPatch) -> dict[str, dict]:
    """The CLI's answers, asked before the API process holds the embedded Qdrant folder."""
    for key, value in library.env.items():
        monkeypatch_module.setenv(key, value)
    return {
        "red": search_json("a red picture", "--top-k", "5"),
        "newest": search_json("--order", "newest", "--top-k", "20"),
    }


@pytest.fixture(scope="module")
def monkeypatch_module() -> Iterator[pytest.MonkeyPatch]:
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def api(
    library: Library, expected: dict[str, dict], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[httpx.Client]:
    env = {**library.env, "REDIS_URL": REDIS_URL, "MAX_IMAGE_BYTES": str(UPLOAD_LIMIT), "METRICS_PORT": str(METRICS)}
    with (
        api_server(env, tmp_path_factory.mktemp("api") / "api.log") as url,
        httpx.Client(base_url=url, timeout=60) as client,
    ):
        yield client


def test_text_search_gives_the_cli_s_hits(api: httpx.Client, expected: dict[str, dict]) -> None:
    answer = api.get("/api/v1/search", params={"q": "a red picture", "limit": 5})
    assert answer.status_code == 200, answer.text
    page = answer.json()
    assert page["schema_version"] == expected["red"]["schema_version"] == 1
    assert page["results"] == expected["red"]["results"]
    assert "revision" not in page["results"][0]
    assert "words" not in page["results"][0]
    hits_before = results_cache_hits()
    again = api.get("/api/v1/search", params={"q": "a red picture", "limit": 5}).json()
    assert again == page
    assert results_cache_hits() == hits_before + 1  # the page came from the Redis query cache


def results_cache_hits() -> float:
    """The API process's count of result pages answered by the Redis query cache (its /metrics)."""
    text = httpx.get(f"http://127.0.0.1:{METRICS}/metrics", timeout=30).text
    line = next(
        row
        for row in text.splitlines()
        if row.startswith('dyimages_app_query_cache_total{kind="results",outcome="hit"}')
    )
    return float(line.split()[-1])


def test_browse_by_date_is_the_cli_s_order(api: httpx.Client, expected: dict[str, dict]) -> None:
    page = api.get("/api/v1/search", params={"order": "newest", "limit": 20}).json()
    assert [h["sha256"] for h in page["results"]] == [h["sha256"] for h in expected["newest"]["results"]]
    assert {h["score"] for h in page["results"]} == {0.0}


def test_an_uploaded_image_finds_itself_first(api: httpx.Client, library: Library) -> None:
    picture = library.pictures[3]
    answer = api.post("/api/v1/search/image", files={"image": ("q.jpg", picture.data, "image/jpeg")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["results"][0]["sha256"] == picture.sha256
    assert answer.json()["query"]["image"] is True


def test_similar_leaves_the_image_out_and_an_unknown_one_is_404(api: httpx.Client, library: Library) -> None:
    sha = library.pictures[0].sha256
    page = api.get(f"/api/v1/images/{sha}/similar", params={"limit": 20}).json()
    assert sha not in [h["sha256"] for h in page["results"]]
    assert len(page["results"]) == len(library.pictures) - 1
    missing = api.get(f"/api/v1/images/{'0' * 64}/similar")
    assert missing.status_code == 404
    assert "no indexed image" in missing.json()["detail"]


def test_filters_keep_only_what_they_name(api: httpx.Client) -> None:
    page = api.get("/api/v1/search", params={"q": "picture", "limit": 20, "format": "png"}).json()
    assert [h["content_type"] for h in page["results"]] == ["image/png"]
    page = api.get("/api/v1/search", params={"q": "picture", "limit": 20, "domain": "www.art.example.org"}).json()
    assert {d for h in page["results"] for d in h["domains"]} == {"art.example.org"}
    page = api.get("/api/v1/search", params={"q": "picture", "limit": 20, "min_width": 300}).json()
    assert len(page["results"]) == 2
    assert all(h["width"] >= 300 for h in page["results"])
    page = api.get("/api/v1/search", params={"q": "picture", "folder": "/2024/summer/"}).json()
    assert page["query"]["filters"]["folder"] == "/2024/summer/"
    assert page["results"] == []  # the library's images are downloads: no photo folder holds them


def test_status_counts_the_index(api: httpx.Client, library: Library) -> None:
    status = api.get("/api/v1/status").json()
    assert status["index"]["points"] == len(library.pictures)
    assert status["embedding"]["healthy"] is True


def test_image_bytes_and_thumbnail(api: httpx.Client, library: Library) -> None:
    picture = library.pictures[9]  # 320x240
    original = api.get(f"/api/v1/images/{picture.sha256}")
    assert original.status_code == 200
    assert original.content == picture.data
    assert original.headers["content-type"] == picture.content_type
    small = api.get(f"/api/v1/images/{picture.sha256}/thumbnail", params={"size": 64})
    assert small.headers["content-type"] == "image/jpeg"
    assert max(Image.open(io.BytesIO(small.content)).size) == 64
    assert api.get(f"/api/v1/images/{'f' * 64}").status_code == 404


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"q": "x", "limit": 1000}, "less than or equal to 100"),
        ({"q": "x", "offset": 10**9}, "less than or equal to 1000"),
        ({"q": "x" * 501}, "at most 500 characters"),
        ({"q": "x", "date_from": "2024-05-02", "date_to": "2024-05-01"}, "is after date_to"),
        ({"q": "x", "format": "bmp"}, "jpeg"),
        ({"q": "x", "date_to": "9.557699923810879e-117"}, "YYYY-MM-DD"),  # not a Unix time: Schemathesis found it
        ({"q": "x", "date_from": "1714521600"}, "YYYY-MM-DD"),
    ],
)
def test_hostile_parameters_are_refused_with_the_bound(api: httpx.Client, params: dict, words: str) -> None:
    answer = api.get("/api/v1/search", params=params)
    assert answer.status_code == 422, answer.text
    assert words in answer.text


def test_nothing_to_search_for_is_400(api: httpx.Client) -> None:
    answer = api.get("/api/v1/search", params={"q": "  -people"})
    assert answer.status_code == 400
    assert "nothing to search for" in answer.json()["detail"]


def test_bad_and_oversized_uploads_are_refused(api: httpx.Client) -> None:
    bad = api.post("/api/v1/search/image", files={"image": ("q.jpg", b"not an image at all", "image/jpeg")})
    assert bad.status_code == 400, bad.text
    assert "embedding service refused" in bad.json()["detail"]
    big = api.post("/api/v1/search/image", files={"image": ("q.jpg", b"\xff" * (UPLOAD_LIMIT + 1), "image/jpeg")})
    assert big.status_code == 413, big.text
    assert str(UPLOAD_LIMIT) in big.json()["detail"]
    huge = api.post("/api/v1/search/image", content=b"x" * (UPLOAD_LIMIT + 128 * 1024))
    assert huge.status_code == 413, huge.text
    streamed = api.post("/api/v1/search/image", content=iter([b"x" * 10]))  # chunked: no Content-Length
    assert streamed.status_code == 411, streamed.text


def test_no_token_asked_and_no_cors_unless_configured(api: httpx.Client) -> None:
    assert (
        "access-control-allow-origin" not in api.get("/api/v1/health", headers={"Origin": "https://x.example"}).headers
    )
    assert api.get("/api/v1/status").status_code == 200


def test_a_configured_token_and_cors_origin(own_library: Library, tmp_path: Path) -> None:
    env = {**own_library.env, "API_TOKEN": TOKEN, "API_CORS_ORIGINS": "https://home.example"}
    with api_server(env, tmp_path / "api.log") as url, httpx.Client(base_url=url, timeout=60) as client:
        refused = client.get("/api/v1/search", params={"q": "red"})
        assert refused.status_code == 401
        assert "Authorization: Bearer" in refused.json()["detail"]
        assert (
            client.get("/api/v1/search", params={"q": "red"}, headers={"Authorization": "Bearer wrong"}).status_code
            == 401
        )
        allowed = client.get("/api/v1/search", params={"q": "red"}, headers={"Authorization": f"Bearer {TOKEN}"})
        assert allowed.status_code == 200
        assert allowed.json()["results"] == []
        assert client.get("/api/v1/health").status_code == 200  # the health check needs no token
        cors = client.get("/api/v1/health", headers={"Origin": "https://home.example"})
        assert cors.headers["access-control-allow-origin"] == "https://home.example"
