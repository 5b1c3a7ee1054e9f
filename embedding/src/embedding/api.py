"""The LitServe API: decode a request into model inputs, embed a batch of requests, answer JSON.

The serving loop (:mod:`embedding.loop`) drives it: ``setup`` and ``load`` once per worker,
``decode_async`` per request (images go to the decode pool), ``predict`` per batch of requests and
``encode_response`` per request. A request carries up to MAX_ITEMS_PER_REQUEST items, so ``predict``
flattens the items of every request in the batch, runs the model in chunks of at most
``EMBEDDING_MAX_BATCH_SIZE`` items, and splits the vectors back per request; a bad item keeps its
error string and gets no vector, its neighbours are unaffected.
"""

# No `from __future__ import annotations`: LitServe reads decode_request's annotation at run time.

import logging
import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import litserve as ls
import numpy as np
import pydantic_core
from starlette.responses import Response

from dyimages_common.embedding_api import EMBED_PATH, EmbedRequest, ImageRef, ModelInfo
from dyimages_common.logs import configure_logging
from embedding import metrics
from embedding.items import ImageLimits, prepare_image
from embedding.runtime import load_backend, resolve_runtime
from embedding.settings import EmbeddingSettings

log = logging.getLogger(__name__)

Kind = Literal["text", "image"]


@dataclass
class Job:
    """One request's items, ready for the model: a tensor per good item, an error string per bad one."""

    kind: Kind
    inputs: list[Any]  # per item: the backend's input (pixels or token ids), or the error string


@dataclass
class Result:
    """One request's answer: per item, a unit vector or None, and None or the reason."""

    vectors: list[np.ndarray | None]
    errors: list[str | None]


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def thread_counts(settings: EmbeddingSettings, device: str) -> tuple[int, int]:
    """(torch intra-op threads, decode threads) unless the settings fix them.

    On CPU the model needs every core, and one decode thread per four cores keeps it fed (a
    640x480 JPEG decodes and preprocesses in about 9 ms, ViT-B-32 takes about 70 ms per image).
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
        from embedding.loop import PipelinedLoop

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
        self.limits = ImageLimits(settings.images_dir, settings.max_image_bytes, settings.max_image_pixels)
        self.decode_pool = ThreadPoolExecutor(max_workers=decode_threads, thread_name_prefix="decode")
        log.info("runtime %s: %d model threads, %d decode threads", runtime.name, torch_threads, decode_threads)
        with self.loaded_workers.get_lock():
            self.loaded_workers.value += 1

    def health(self) -> bool:
        return self.loaded_workers.value >= self.expected_workers

    # -- per request -----------------------------------------------------------------------------

    def decode_request(self, request: EmbedRequest) -> Job:
        if request.texts is not None:
            return Job("text", self.loaded.tokenize(request.texts))
        assert request.images is not None
        preprocess = self.loaded.preprocess
        inputs = list(self.decode_pool.map(lambda ref: prepare_image(ref, self.limits, preprocess), request.images))
        return Job("image", inputs)

    def decode_async(self, request: EmbedRequest, deliver: Callable[[Job], None]) -> None:
        """Like decode_request, but returns at once: ``deliver`` gets the job when every item is ready.

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
        inputs: list[Any] = ["internal_error: not decoded"] * len(refs)
        remaining = len(refs)
        lock = threading.Lock()

        def prepare(index: int, ref: ImageRef) -> None:
            nonlocal remaining
            try:
                inputs[index] = prepare_image(ref, self.limits, self.loaded.preprocess)
            except Exception as exc:  # a bug, not a bad image: fail this item, never the request
                log.exception("preparing an image failed")
                inputs[index] = f"internal_error: {exc!r}"
            with lock:
                remaining -= 1
                done = remaining == 0
            if done:
                deliver(Job("image", inputs))

        for index, ref in enumerate(refs):
            self.decode_pool.submit(prepare, index, ref)

    def batch(self, inputs: list[Job]) -> list[Job]:
        return inputs

    def predict(self, jobs: list[Job]) -> list[Result]:
        results = [Result([None] * len(job.inputs), [None] * len(job.inputs)) for job in jobs]
        for kind in ("image", "text"):
            slots: list[tuple[int, int]] = []
            tensors: list[Any] = []
            for j, job in enumerate(jobs):
                if job.kind != kind:
                    continue
                for i, item in enumerate(job.inputs):
                    if isinstance(item, str):
                        results[j].errors[i] = item
                    else:
                        slots.append((j, i))
                        tensors.append(item)
            step = self.settings.embedding_max_batch_size
            for start in range(0, len(tensors), step):
                chunk = tensors[start : start + step]
                metrics.BATCH_SIZE.observe(len(chunk))
                embed = self.loaded.embed_images if kind == "image" else self.loaded.embed_texts
                vectors = embed(chunk)
                for (j, i), vector in zip(slots[start : start + step], vectors, strict=True):
                    results[j].vectors[i] = vector
            if tensors:
                metrics.ITEMS.labels(kind=kind).inc(len(tensors))
        return results

    def unbatch(self, output: list[Result]) -> list[Result]:
        return output

    def encode_response(self, output: Result) -> Response:
        # pydantic-core's JSON writer (Rust) instead of json.dumps: 4x faster for 256 vectors, and
        # this runs in the model worker. Floats keep every bit (float32 -> float64 -> shortest text).
        vectors = [None if vector is None else vector.tolist() for vector in output.vectors]
        body = pydantic_core.to_json(
            {
                "model": self.info.model,
                "pretrained": self.info.pretrained,
                "dim": self.info.dim,
                "vectors": vectors,
                "errors": output.errors,
            }
        )
        return Response(body, media_type="application/json")
