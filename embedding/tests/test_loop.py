"""The worker's serving loop, in-process with the real API and the tiny OpenCLIP model.

LitServe hands the loop a request queue and a transport to the HTTP process; here the queue is a
queue that, once drained, raises ``EOFError`` as LitServe's manager queue does when the server's
manager goes away (the loop's own way out), and the transport a recorder, so batching can be
observed exactly. The requests are the tuples LitServe's HTTP process queues: ``(response queue,
uid, time.monotonic() when queued, request)``. How the real server stops with requests in flight
(SIGTERM) is tested against the real process in test_shutdown_in_flight.py.
"""

from __future__ import annotations

import pickle
import queue
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fastapi import HTTPException
from litserve.utils import LitAPIStatus
from PIL import Image
from prometheus_client import REGISTRY

from dyimages_common.embeddings.wire import EmbedRequest, EmbedResponse
from dyimages_common.reasons import Reason
from dyimages_common.settings import load_settings
from embedding.api import EmbeddingAPI
from embedding.loop import PipelinedLoop
from embedding.model import describe_model
from embedding.settings import EmbeddingSettings
from testkit import TINY_MODEL, TINY_MODEL_CONFIG
from testkit.embedding import MODEL_CACHE_DIR
from testkit.images import jpeg
from testkit.storage import store

pytestmark = pytest.mark.unit


class RecordingTransport:
    def __init__(self) -> None:
        self.sent: dict[str, tuple[object, str]] = {}

    def send(self, item: tuple, consumer_id: int) -> None:
        uid, (response, status, _response_type, _worker_id) = item
        self.sent[uid] = (response, status)


def make_api(images_dir: Path, max_batch_size: int, batch_timeout_ms: float) -> EmbeddingAPI:
    settings = load_settings(
        EmbeddingSettings,
        model_name=TINY_MODEL,
        model_pretrained="none",
        model_config_file=TINY_MODEL_CONFIG,
        model_cache_dir=MODEL_CACHE_DIR,  # the ONNX bundle is exported there once, not into /models
        device="cpu",
        images_dir=images_dir,
        embedding_max_batch_size=max_batch_size,
        embedding_batch_timeout_ms=batch_timeout_ms,
    )
    api = EmbeddingAPI(settings, describe_model(settings))
    api.setup("cpu")
    api.load()
    return api


@pytest.fixture
def api(images_dir: Path) -> Iterator[EmbeddingAPI]:
    api = make_api(images_dir, max_batch_size=4, batch_timeout_ms=10_000)
    yield api
    api.decode_pool.shutdown()


class DrainingQueue(queue.Queue):
    """The requests, then ``EOFError`` as from a manager queue whose server has gone away."""

    def get(self, block: bool = True, timeout: float | None = None) -> object:
        try:
            return super().get(block=False)
        except queue.Empty:
            raise EOFError from None


def serve(api: EmbeddingAPI, requests: list[EmbedRequest], waited_s: float = 0.0) -> dict[str, tuple[object, str]]:
    """Queue the requests (queued ``waited_s`` ago) and run the loop until its queue goes away."""
    request_queue = DrainingQueue()
    for index, request in enumerate(requests):
        request_queue.put((0, f"r{index}", time.monotonic() - waited_s, request))
    transport = RecordingTransport()
    PipelinedLoop()(api, "cpu", 0, request_queue, transport, {}, None)
    return transport.sent


def vectors(answer: object) -> np.ndarray:
    response = EmbedResponse.model_validate_json(answer.body)
    return np.asarray(response.vectors, dtype=np.float32)


def alone(api: EmbeddingAPI, text: str) -> np.ndarray:
    return api.loaded.embed_texts(api.loaded.tokenize([text]))[0]


def batch_counts() -> tuple[float, float]:
    return (
        REGISTRY.get_sample_value("dyimages_embedding_batch_size_count") or 0.0,
        REGISTRY.get_sample_value("dyimages_embedding_batch_size_sum") or 0.0,
    )


def test_health_waits_for_the_model(images_dir: Path) -> None:
    api = make_api(images_dir, max_batch_size=4, batch_timeout_ms=0)
    assert api.health()  # loaded by make_api
    fresh = EmbeddingAPI(api.settings, api.info)
    fresh.setup("cpu")
    assert not fresh.health()  # LitServe's setup is done, the model is not: /health says 503
    api.decode_pool.shutdown()


def test_items_of_several_requests_share_one_forward_pass(api: EmbeddingAPI) -> None:
    texts = [["a dog"], ["a red car", "a blue car"], ["a tree"]]
    count, total = batch_counts()
    sent = serve(api, [EmbedRequest(texts=t) for t in texts])
    assert batch_counts() == (count + 1, total + 4)  # 4 items, max batch 4: one pass
    for index, request_texts in enumerate(texts):
        answer, status = sent[f"r{index}"]
        assert status == LitAPIStatus.OK
        got = vectors(answer)
        expected = np.stack([alone(api, text) for text in request_texts])
        np.testing.assert_allclose(got, expected, atol=1e-5)


def test_a_request_larger_than_the_batch_runs_in_chunks(api: EmbeddingAPI) -> None:
    texts = [f"photo number {i}" for i in range(9)]
    count, total = batch_counts()
    sent = serve(api, [EmbedRequest(texts=texts)])
    assert batch_counts() == (count + 3, total + 9)  # 4 + 4 + 1
    np.testing.assert_allclose(vectors(sent["r0"][0]), np.stack([alone(api, t) for t in texts]), atol=1e-5)


def test_texts_and_images_in_one_batch_each_get_their_own_answer(api: EmbeddingAPI, images_dir: Path) -> None:
    path = store(images_dir, jpeg(21, (80, 60)))
    sent = serve(
        api,
        [EmbedRequest(images=[{"path": path}, {"path": "../nope.jpg"}]), EmbedRequest(texts=["a picture"])],
    )
    image_answer = EmbedResponse.model_validate_json(sent["r0"][0].body)
    assert image_answer.errors[0] is None
    assert image_answer.errors[1].reason is Reason.UNSAFE_PATH
    assert image_answer.vectors[1] is None
    expected = api.loaded.embed_images([api.loaded.preprocess(Image.open(images_dir / path))])[0]
    np.testing.assert_allclose(image_answer.vectors[0], expected, atol=1e-5)
    np.testing.assert_allclose(vectors(sent["r1"][0])[0], alone(api, "a picture"), atol=1e-5)


def test_a_model_failure_answers_every_request_of_the_batch_with_an_error(
    api: EmbeddingAPI, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(tokens: list[object]) -> np.ndarray:
        raise RuntimeError("CUDA error: device-side assert")

    monkeypatch.setattr(api.loaded, "embed_texts", broken)  # a fault the real model cannot be made to have
    sent = serve(api, [EmbedRequest(texts=["one"]), EmbedRequest(texts=["two"])])
    for uid in ("r0", "r1"):
        answer, status = sent[uid]
        assert status == LitAPIStatus.ERROR
        assert "device-side assert" in str(pickle.loads(answer))


def test_a_request_that_waited_past_the_request_timeout_is_answered_504_not_computed(api: EmbeddingAPI) -> None:
    """LitServer(timeout=...) is enforced by this loop: its client has given up on such a request."""
    api.request_timeout = 5.0
    count, total = batch_counts()
    late = serve(api, [EmbedRequest(texts=["late"])], waited_s=6.0)
    assert batch_counts() == (count, total)  # the model never ran
    answer, status = late["r0"]
    assert status == LitAPIStatus.ERROR
    error = pickle.loads(answer)
    assert isinstance(error, HTTPException)
    assert error.status_code == 504
    on_time = serve(api, [EmbedRequest(texts=["on time"])], waited_s=1.0)
    assert on_time["r0"][1] == LitAPIStatus.OK
