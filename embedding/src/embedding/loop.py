"""The model worker's serving loop: decode in threads while the model runs, batch by items, never poll.

Where it differs from LitServe's stock batched loop, and why. The stock loop takes up to
``max_batch_size`` *requests*, then runs ``decode_request`` on each, ``batch``, ``predict``,
``unbatch`` and ``encode_response`` one after the other in the worker: the model idles while
images are read and preprocessed, a request of 256 images counts as one, and with
``batch_timeout=0`` it spins on the request queue. This loop splits the work:

* an intake thread blocks on the request queue and hands each request to the API's
  ``decode_async`` as soon as it arrives: each image is decoded in the decode pool (texts are
  tokenized at once, it is cheap);
* the model thread takes every request whose items are ready, up to ``EMBEDDING_MAX_BATCH_SIZE``
  *items* (waiting ``EMBEDDING_BATCH_TIMEOUT_MS`` for more), and per kind, texts first (queries
  are latency-sensitive), calls ``predict`` on the requests' jobs (it batches their items and
  splits the vectors back per request: LitServe's ``batch`` and ``unbatch`` are inside it) and
  ``encode_response`` on each result.

So while the model embeds one batch, the next one is being decoded.

A request that has waited longer than LitServe's request timeout (``LitServer(timeout=...)``, set
below the clients' timeout) when it is taken in, or when its batch would start, is answered 504
instead of computed: its client has given up on it, or is about to.

The worker stops when the server stops: the server terminates it (``server.py``); if its request
queue goes away first, the intake thread ends, every request already taken in is answered, and
the loop returns. How LitServe hands requests in and answers out is :mod:`embedding.litserve_compat`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from embedding.items import Job, Result
from embedding.litserve_compat import QueuedRequest, Replies, Requests, WorkerLoop, request_timeout, timed_out_error

log = logging.getLogger(__name__)


class PipelinedAPI(Protocol):
    """What the loop needs from the API (:class:`embedding.api.EmbeddingAPI`)."""

    max_batch_size: int
    batch_timeout: float

    def load(self) -> None: ...

    def decode_async(self, request: Any, deliver: Callable[[Job], None]) -> None: ...

    def finish_decoding(self) -> None: ...

    def predict(self, jobs: list[Job]) -> list[Result]: ...

    def encode_response(self, output: Result) -> Any: ...


@dataclass
class Ready:
    """A request whose items are decoded (``job``), or that failed as a whole (``error``)."""

    queued: QueuedRequest
    job: Job | None = None
    error: Exception | None = None

    @property
    def items(self) -> int:
        return len(self.job.inputs) if self.job else 0


_STOP = object()


def timed_out(lit_api: PipelinedAPI, submitted_at: float) -> bool:
    """Whether a request has waited past the server's request timeout (False when there is none)."""
    limit = request_timeout(lit_api)
    return limit is not None and time.monotonic() - submitted_at > limit


class PipelinedLoop(WorkerLoop):
    def serve(self, lit_api: PipelinedAPI, requests: Requests, replies: Replies) -> None:
        try:
            lit_api.load()
        except Exception:
            log.exception("the model could not be loaded: this worker stops, and the server with it")
            raise SystemExit(1) from None
        ready: queue.Queue[Ready | object] = queue.Queue()
        intake = threading.Thread(target=self._intake, args=(lit_api, requests, ready), daemon=True, name="intake")
        intake.start()
        while (batch := self._next_batch(lit_api, ready)) is not None:
            self._answer(lit_api, batch, replies)

    # -- intake thread -------------------------------------------------------------------------

    def _intake(self, lit_api: PipelinedAPI, requests: Requests, ready: queue.Queue[Ready | object]) -> None:
        try:
            while (queued := requests.next()) is not None:
                if timed_out(lit_api, queued.submitted_at):
                    ready.put(Ready(queued, error=timed_out_error()))
                    continue

                def deliver(job: Job, queued: QueuedRequest = queued) -> None:
                    ready.put(Ready(queued, job=job))

                try:
                    lit_api.decode_async(queued.request, deliver)
                except Exception as exc:
                    log.exception("could not decode a request")
                    ready.put(Ready(queued, error=exc))
        finally:
            lit_api.finish_decoding()  # every request taken in gets its answer first
            ready.put(_STOP)

    # -- model thread ---------------------------------------------------------------------------

    def _next_batch(self, lit_api: PipelinedAPI, ready: queue.Queue[Ready | object]) -> list[Ready] | None:
        first = ready.get()
        if first is _STOP:
            return None
        assert isinstance(first, Ready)
        batch = [first]
        items = first.items
        deadline = time.monotonic() + lit_api.batch_timeout
        while items < lit_api.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                more = ready.get(timeout=remaining) if remaining > 0 else ready.get_nowait()
            except queue.Empty:
                break
            if more is _STOP:
                ready.put(_STOP)
                break
            assert isinstance(more, Ready)
            batch.append(more)
            items += more.items
        return batch

    def _answer(self, lit_api: PipelinedAPI, batch: list[Ready], replies: Replies) -> None:
        for entry in batch:
            if entry.error is None and timed_out(lit_api, entry.queued.submitted_at):
                entry.error, entry.job = timed_out_error(), None
        for entry in batch:
            if entry.error is not None:
                replies.fail(entry.queued, entry.error)
        for kind in ("text", "image"):
            group = [(entry.queued, entry.job) for entry in batch if entry.job is not None and entry.job.kind == kind]
            if not group:
                continue
            try:
                results = lit_api.predict([job for _, job in group])
                answers = [lit_api.encode_response(result) for result in results]
            except Exception as exc:
                log.exception("embedding a batch of %d %s requests failed", len(group), kind)
                for queued, _ in group:
                    replies.fail(queued, exc)
                continue
            for (queued, _), answer in zip(group, answers, strict=True):
                replies.answer(queued, answer)
