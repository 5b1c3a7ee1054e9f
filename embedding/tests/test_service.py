"""The service as a real process (LitServe + OpenCLIP, tiny random-weight model) over HTTP."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import numpy as np
import pytest

from dyimages_common.embeddings.client import EmbeddingClient, EmbeddingRequestError, ItemFailure
from dyimages_common.reasons import Reason
from testkit.embedding import EmbeddingService
from testkit.images import jpeg, png
from testkit.storage import store

pytestmark = pytest.mark.integration


@pytest.fixture
def client(embedding_service: EmbeddingService) -> EmbeddingClient:
    with EmbeddingClient(embedding_service.url, timeout=60) as client:
        yield client


def test_health_and_info_describe_the_model(client: EmbeddingClient) -> None:
    assert client.healthy()
    info = client.info()
    described = (info.model, info.pretrained, info.dim, info.device, info.context_length)
    assert described == ("dy-tiny", "none", 512, "cpu", 77)


def test_texts_give_one_unit_vector_each(client: EmbeddingClient) -> None:
    vectors = client.embed_texts(["a red bicycle", "a cat on a sofa", "a red bicycle"])
    assert vectors.shape == (3, 512)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors[0], vectors[2], atol=1e-6)
    assert not np.allclose(vectors[0], vectors[1])


def test_images_by_path_and_by_bytes_agree(client: EmbeddingClient, shared_images_dir: Path) -> None:
    data = jpeg(1, (120, 90))
    path = store(shared_images_dir, data)
    by_path = client.embed_image_paths([path])
    by_bytes = client.embed_image_bytes(data)
    assert by_path.errors == [None]
    np.testing.assert_allclose(by_path.vectors[0], by_bytes, atol=1e-6)
    assert np.linalg.norm(by_bytes) == pytest.approx(1.0, abs=1e-5)


def test_a_bad_item_fails_alone(client: EmbeddingClient, shared_images_dir: Path) -> None:
    good = [store(shared_images_dir, jpeg(2)), store(shared_images_dir, png(3), "png")]
    missing = "ab/cd/abcd" + "0" * 60 + ".jpg"
    not_image = store(shared_images_dir, b"this is not an image at all", "png")
    result = client.embed_image_paths([good[0], missing, "../../etc/passwd", not_image, good[1]])
    assert [v is not None for v in result.vectors] == [True, False, False, False, True]
    assert result.errors[0] is None
    assert result.errors[4] is None
    assert [error.reason for error in result.errors[1:4]] == [Reason.NOT_FOUND, Reason.UNSAFE_PATH, Reason.NOT_AN_IMAGE]
    assert missing in result.errors[1].detail
    alone = client.embed_image_paths([good[0]])
    np.testing.assert_allclose(result.vectors[0], alone.vectors[0], atol=1e-5)


@pytest.mark.parametrize(
    "payload",
    [{"texts": []}, {"texts": ["  "]}, {"texts": ["a"], "images": [{"path": "x"}]}, {}, {"images": [{}]}],
)
def test_a_wrong_request_is_a_4xx_with_detail(embedding_service: EmbeddingService, payload: dict) -> None:
    response = httpx.post(f"{embedding_service.url}/embed", json=payload, timeout=30)
    assert 400 <= response.status_code < 500
    assert "detail" in response.json()


def test_empty_text_is_refused_by_the_client(client: EmbeddingClient) -> None:
    with pytest.raises(EmbeddingRequestError):
        client.embed_texts([""])


def test_long_text_is_truncated_not_refused(client: EmbeddingClient) -> None:
    long_text = " ".join(["bicycle"] * 500)
    vectors = client.embed_texts([long_text, " ".join(["bicycle"] * 400)])
    # Both truncate to the same first 77 tokens, as OpenCLIP's tokenizer does.
    np.testing.assert_allclose(vectors[0], vectors[1], atol=1e-6)


def test_bad_base64_fails_that_item(embedding_service: EmbeddingService) -> None:
    good = base64.b64encode(jpeg(4)).decode()
    response = httpx.post(
        f"{embedding_service.url}/embed", json={"images": [{"data": "%%%"}, {"data": good}]}, timeout=30
    )
    body = response.json()
    assert response.status_code == 200
    assert body["vectors"][0] is None
    assert body["errors"] == [{"reason": "bad_base64", "detail": "`data` is not valid base64"}, None]
    assert body["vectors"][1] is not None


def test_an_upload_that_is_not_an_image_is_refused_with_its_reason(client: EmbeddingClient) -> None:
    with pytest.raises(EmbeddingRequestError) as refused:
        client.embed_image_bytes(b"GIF89a but not really")
    assert isinstance(refused.value.failure, ItemFailure)
    assert refused.value.failure.reason is Reason.NOT_AN_IMAGE
    assert str(refused.value).startswith("not_an_image: ")


def test_metrics_count_requests_items_and_batches(client: EmbeddingClient, embedding_service: EmbeddingService) -> None:
    client.embed_texts(["metrics please"])
    text = httpx.get(f"{embedding_service.url}/metrics", timeout=10).text
    for name in (
        'dyimages_embedding_requests_total{kind="text",status="200"}',
        'dyimages_embedding_items_total{kind="text"}',
        "dyimages_embedding_batch_size_count",
        'dyimages_embedding_latency_seconds_count{kind="text"}',
    ):
        assert name in text


def test_the_worker_processes_run_with_two_malloc_arenas(embedding_service: EmbeddingService) -> None:
    """Decoding large photos in threads grows one heap per thread without it (bench library: 2.9 GB
    against 1.1 GB); glibc reads the variable at a process's start, so the model workers, which decode,
    must inherit it."""
    import psutil

    children = psutil.Process(embedding_service.pid).children(recursive=True)
    # The model workers, where images are decoded, are spawned (a fresh interpreter); the HTTP server
    # processes are forked and decode nothing.
    workers = [child for child in children if "multiprocessing.spawn" in " ".join(child.cmdline())]
    assert workers, "the service has spawned model workers"
    expected = embedding_service.env.get("MALLOC_ARENA_MAX", "2")  # an explicit value is kept
    assert {worker.environ().get("MALLOC_ARENA_MAX") for worker in workers} == {expected}
