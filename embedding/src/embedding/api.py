"""The LitServe API: decode a request into model inputs, embed a batch of requests, answer JSON.

Read it with LitServe's flow in mind (decode_request -> batch -> predict -> unbatch ->
encode_response); the differences, all because one request carries up to MAX_ITEMS_PER_REQUEST
items and images take longer to decode than to embed:

* the API brings its own loop (:mod:`embedding.loop`), which calls ``load`` once per worker
  (``setup`` returns at once, so /health can say 503 while the model loads), ``decode_async`` per
  request (texts through ``decode_request``, each image in the decode pool, so decoding overlaps
  the model), ``predict`` per batch of requests of one kind and ``encode_response`` per request;
* there is no ``batch`` or ``unbatch``: ``predict`` takes the requests' jobs, flattens their items,
  runs the model in chunks of at most ``EMBEDDING_MAX_BATCH_SIZE`` items and splits the vectors
  back per request, so a batch is counted in items, not requests. A bad item keeps its
  ``ItemFailure`` (a ``Reason`` and a detail) and gets no vector; its neighbours are unaffected.
"""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation at run time.

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import litserve as ls
import pydantic_core
from starlette.responses import Response

from dyimages_common.embeddings.wire import EMBED_PATH, EmbedRequest, ImageRef, ItemFailure, ModelInfo
from dyimages_common.process.logs import configure_logging
from dyimages_common.reasons import Reason
from embedding import metrics
from embedding.items import ImageLimits, Job, Result, prepare_image
from embedding.loop import PipelinedLoop
from embedding.preprocess import input_side
from embedding.runtime import load_backend, resolve_runtime
from embedding.settings import EmbeddingSettings

log = logging.getLogger(__name__)


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_counts(settings: EmbeddingSettings, device: str) -> tuple[int, int]:
    """(torch intra-op threads, decode threads) unless the settings fix them.

    On CPU the model needs every core, and one decode thread per four cores keeps it fed (decoding
    and preprocessing a photo takes a small part of the model's time per image: bench/RESULTS.md).
    On a GPU the CPU only decodes: one thread per core, each running its preprocessing alone
    (torch's own threads would multiply with them).
    """
    cores = _cpu_count()
    if device.startswith("cuda"):
        torch_threads, decode_threads = 1, cores
    else:
        torch_threads, decode_threads = cores, max(1, cores // 4)
    return (
        settings.embedding_torch_threads or torch_threads,
        settings.embedding_decode_threads or decode_threads,
    )


class EmbeddingAPI(ls.LitAPI):
    def __init__(self, settings: EmbeddingSettings, info: ModelInfo) -> None:
        super().__init__(
            max_batch_size=settings.embedding_max_batch_size,
            batch_timeout=settings.embedding_batch_timeout_ms / 1000,
            api_path=EMBED_PATH,
            loop=PipelinedLoop(),
        )
        self.settings = settings
        self.info = info
        # How many model workers have loaded the model: the workers count up, /health (in the HTTP
        # processes) compares with ``expected_workers``. Shared memory, inherited by both kinds of
        # process. LitServe starts answering HTTP only after every ``setup`` returned, so ``setup``
        # returns at once and the model loads in the serving loop: /health is a true 503 meanwhile
        # (weights may be downloading) instead of a refused connection.
        self.loaded_workers = multiprocessing.get_context("spawn").Value("i", 0)
        self.expected_workers = 1
        self.device_name = "cpu"

    # -- worker start-up ---------------------------------------------------------------------

    def setup(self, device: str) -> None:
        configure_logging("embedding", self.settings.log_level, self.settings.log_format)
        self.device_name = device

    def load(self) -> None:
        """Load the model in this worker (downloading weights into MODEL_CACHE_DIR if needed), once."""
        if hasattr(self, "loaded"):
            return
        settings = self.settings
        torch_threads, decode_threads = thread_counts(settings, self.device_name)
        runtime = resolve_runtime(settings)
        self.loaded = load_backend(settings, runtime, self.device_name, torch_threads)
        side = input_side(self.loaded.preprocess) if settings.embedding_reduced_decode else None
        self.limits = ImageLimits(
            settings.images_dir, settings.max_image_bytes, settings.max_image_pixels, settings.photos_dir, side
        )
        self.decode_pool = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode")
        log.info("runtime %s: %d model threads, %d decode threads", runtime.name, torch_threads, decode_threads)
        with self.loaded_workers.get_lock():
            self.loaded_workers.value += 1

    def health(self) -> bool:
        return self.loaded_workers.value >= self.expected_workers

    # -- per request -----------------------------------------------------------------------------

    def decode_request(self, request: EmbedRequest) -> Job:
        """LitServe's decode step, used for texts (tokenizing is cheap); images go through :meth:`decode_async`.

        LitServe reads this method's annotation: the HTTP process validates each body as an ``EmbedRequest``.
        """
        assert request.texts is not None, "images are decoded in the decode pool (decode_async)"
        return Job("text", self.loaded.tokenize(request.texts))

    def decode_async(self, request: EmbedRequest, deliver: Callable[[Job], None]) -> None:
        """Decode a request without waiting: ``deliver`` gets the job when every item is ready.

        Each image is decoded and preprocessed in the decode pool, so the images of one request,
        and of the requests behind it, are prepared in parallel while the model runs.
        """
        if request.texts is not None:
            deliver(self.decode_request(request))
            return
        assert request.images is not None
        refs = request.images
        if not refs:
            deliver(Job("image", []))
            return
        inputs: list[Any] = [ItemFailure(reason=Reason.INTERNAL_ERROR, detail="not decoded")] * len(refs)
        remaining = len(refs)
        lock = threading.Lock()

        def prepare(index: int, ref: ImageRef) -> None:
            nonlocal remaining
            try:
                inputs[index] = prepare_image(ref, self.limits, self.loaded.preprocess)
            except Exception as exc:  # a bug, not a bad image: fail this item, never the request
                log.exception("preparing an image failed")
                inputs[index] = ItemFailure(reason=Reason.INTERNAL_ERROR, detail=repr(exc))
            with lock:
                remaining -= 1
                done = remaining == 0
            if done:
                deliver(Job("image", inputs))

        for index, ref in enumerate(refs):
            self.decode_pool.submit(prepare, index, ref)

    def finish_decoding(self) -> None:
        """Wait until every image handed to the decode pool is prepared (and its job delivered)."""
        self.decode_pool.shutdown(wait=True)

    def predict(self, jobs: list[Job]) -> list[Result]:
        """The results of several requests' jobs of one kind: their items batched, the vectors split back."""
        kind = jobs[0].kind
        assert all(job.kind == kind for job in jobs), "the loop batches texts and images apart"
        results = [Result([None] * len(job.inputs), [None] * len(job.inputs)) for job in jobs]
        slots: list[tuple[int, int]] = []
        inputs: list[Any] = []
        for j, job in enumerate(jobs):
            for i, item in enumerate(job.inputs):
                if isinstance(item, ItemFailure):
                    results[j].errors[i] = item
                else:
                    slots.append((j, i))
                    inputs.append(item)
        embed = self.loaded.embed_images if kind == "image" else self.loaded.embed_texts
        step = self.settings.embedding_max_batch_size
        for start in range(0, len(inputs), step):
            chunk = inputs[start : start + step]
            metrics.BATCH_SIZE.observe(len(chunk))
            for (j, i), vector in zip(slots[start : start + step], embed(chunk), strict=True):
                results[j].vectors[i] = vector
        if inputs:
            metrics.ITEMS.labels(kind=kind).inc(len(inputs))
        return results

    def encode_response(self, output: Result) -> Response:
        # pydantic-core's JSON writer (Rust) instead of json.dumps: faster for a batch of vectors
        # (bench/RESULTS.md), and this runs in the model worker. Floats keep every bit (float32 ->
        # float64 -> shortest text).
        vectors = [None if vector is None else vector.tolist() for vector in output.vectors]
        body = pydantic_core.to_json(
            {
                "model": self.info.model,
                "pretrained": self.info.pretrained,
                "dim": self.info.dim,
                "vectors": vectors,
                "errors": [None if error is None else error.model_dump(mode="json") for error in output.errors],
            }
        )
        return Response(body, media_type="application/json")
