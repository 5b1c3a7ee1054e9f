"""One Ray Serve replica of the embedding service: the LitServe service's API object, served by Serve.

The model, its runtime (ONNX Runtime on a CPU, PyTorch on a GPU), the decoding of texts and images,
the batched forward pass and the JSON answer are the LitServe service's own
(:class:`embedding.api.EmbeddingAPI`: ``load``, ``decode_async``, ``predict``, ``encode_response``),
so both ways of running the service answer the same bytes for the same request. What Serve
replaces is LitServe's serving loop (:mod:`embedding.loop`):

* HTTP: a FastAPI ingress with ``/embed``, ``/health``, ``/info`` and ``/metrics``; Serve's proxy
  routes each request to a replica (the one with fewer requests in flight of two picked at random).
* Batching: ``@serve.batch`` over *jobs*, a request's decoded items cut into pieces of at most
  ``EMBEDDING_MAX_BATCH_SIZE``, and a batch is counted in items (``batch_size_fn``), waiting
  ``EMBEDDING_BATCH_TIMEOUT_MS`` for more: the limits LitServe's loop applies. Texts and images
  batch apart; one model thread runs every batch, so the event loop keeps taking requests and
  decoding the next images while the model runs.
* The request timeout: a piece whose request has waited half of ``EMBEDDING_TIMEOUT_S`` when its
  batch starts is not computed, and the request is answered 504, as the LitServe service does.
"""

# No `from __future__ import annotations`: FastAPI reads the handlers' annotations (Request) at run time.

import asyncio
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from pydantic import ValidationError
from ray import serve
from ray.serve.handle import DeploymentHandle
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dyimages_common.embeddings.wire import EMBED_PATH, HEALTH_PATH, INFO_PATH, EmbedRequest, server_request_timeout
from embedding.api import EmbeddingAPI
from embedding.items import Job, Result
from embedding.litserve_compat import timed_out_error
from embedding.metrics import EmbedMetricsMiddleware
from embedding.ray_serve.metrics_pusher import MetricsPusher
from embedding.ray_serve.settings import DEPLOYMENT_NAME, RaySettings
from embedding.runtime import describe, resolve_runtime

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"

ingress = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
ingress.add_middleware(EmbedMetricsMiddleware)


@dataclass
class Piece:
    """At most EMBEDDING_MAX_BATCH_SIZE items of one request, and when that request gives up on the model."""

    job: Job
    deadline: float  # time.monotonic()


def pieces(job: Job, size: int, deadline: float) -> list[Piece]:
    """The job cut into pieces of at most ``size`` items (``@serve.batch`` refuses a larger element)."""
    starts = range(0, len(job.inputs), size)
    return [Piece(Job(job.kind, job.inputs[start : start + size]), deadline) for start in starts]


def joined(results: list[Result]) -> Result:
    """The pieces' results back in one, in order."""
    return Result([v for r in results for v in r.vectors], [e for r in results for e in r.errors])


def _items(batch: list[Piece]) -> int:
    return sum(len(piece.job.inputs) for piece in batch)


def replica_threads(settings: RaySettings, device: str) -> RaySettings:
    """On a CPU, model threads for the CPUs Ray reserved for the replica, not for every core of its node."""
    if device != "cpu" or settings.embedding_ray_replica_cpus == 0:
        return settings
    cpus = max(1, round(settings.embedding_ray_replica_cpus))
    return settings.model_copy(
        update={
            "embedding_torch_threads": settings.embedding_torch_threads or cpus,
            "embedding_decode_threads": settings.embedding_decode_threads or max(1, cpus // 4),
        }
    )


@serve.deployment(name=DEPLOYMENT_NAME)
@serve.ingress(ingress)
class Embedder:
    def __init__(self, settings: RaySettings, hub: DeploymentHandle) -> None:
        # See embedding.__main__: spinning OpenMP threads steal the cores a shared host needs.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        runtime = resolve_runtime(settings)
        settings = settings.model_copy(update={"embedding_runtime": runtime.name, "device": runtime.device})
        settings = replica_threads(settings, runtime.device)
        self.settings = settings
        self.api = EmbeddingAPI(settings, describe(settings, runtime))
        self.api.setup("cuda:0" if runtime.device == "cuda" else "cpu")  # Ray shows a replica its GPUs only
        self.api.load()
        self.model_thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model")
        self.wait_s = server_request_timeout(settings.embedding_timeout_s)
        for batched in (self._texts, self._images):
            batched.set_max_batch_size(settings.embedding_max_batch_size)
            batched.set_batch_wait_timeout_s(settings.embedding_batch_timeout_ms / 1000)
        self.pusher = MetricsPusher(hub, settings.embedding_ray_metrics_push_s)
        self.pusher.start()
        log.info("replica ready: %s (%s) on %s", self.api.info.model, self.api.info.pretrained, self.api.info.device)

    # -- HTTP -------------------------------------------------------------------------------------

    @ingress.post(EMBED_PATH)
    async def embed(self, request: Request) -> Response:
        body = await request.body()
        if len(body) > self.settings.embedding_max_request_bytes:
            return JSONResponse({"detail": "Payload too large"}, status_code=413)
        try:
            parsed = EmbedRequest.model_validate_json(body)
        except ValidationError as exc:  # the 422 FastAPI answers the LitServe service's clients
            errors = exc.errors(include_url=False, include_context=False)
            return JSONResponse({"detail": jsonable_encoder(errors)}, status_code=422)
        deadline = time.monotonic() + self.wait_s
        job = await self._decode(parsed)
        batched = self._texts if job.kind == "text" else self._images
        parts = pieces(job, self.settings.embedding_max_batch_size, deadline)
        results = await asyncio.gather(*(batched(piece) for piece in parts))
        if any(result is None for result in results):
            raise timed_out_error()
        return self.api.encode_response(joined([r for r in results if r is not None]) if parts else Result([], []))

    @ingress.get(HEALTH_PATH)
    async def health(self) -> Response:
        return Response("ok" if self.api.health() else "not ready", status_code=200 if self.api.health() else 503)

    @ingress.get(INFO_PATH)
    async def info(self) -> JSONResponse:
        return JSONResponse(self.api.info.model_dump())

    @ingress.get(METRICS_PATH)
    async def metrics(self) -> Response:
        await self.pusher.push_now()
        body, content_type = await self.pusher.hub.exposition.remote()
        return Response(body, media_type=content_type)

    # -- decoding and batching --------------------------------------------------------------------

    async def _decode(self, request: EmbedRequest) -> Job:
        """The API's own decoding: texts tokenized at once, each image in the decode pool."""
        loop = asyncio.get_running_loop()
        decoded: asyncio.Future[Job] = loop.create_future()
        self.api.decode_async(request, lambda job: loop.call_soon_threadsafe(decoded.set_result, job))
        return await decoded

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0, batch_size_fn=_items)
    async def _texts(self, batch: list[Piece]) -> list[Result | None]:
        return await self._predict(batch)

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0, batch_size_fn=_items)
    async def _images(self, batch: list[Piece]) -> list[Result | None]:
        return await self._predict(batch)

    async def _predict(self, batch: list[Piece]) -> list[Result | None]:
        """The live pieces' results from one forward pass in the model thread; None for a piece whose
        request has given up (its client is about to send it again)."""
        now = time.monotonic()
        live = [piece for piece in batch if piece.deadline >= now]
        if not live:
            return [None] * len(batch)
        loop = asyncio.get_running_loop()
        results = iter(await loop.run_in_executor(self.model_thread, self.api.predict, [p.job for p in live]))
        return [next(results) if piece.deadline >= now else None for piece in batch]
