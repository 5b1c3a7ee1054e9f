"""The worker's serving loop: decode in threads while the model runs, batch by items, never poll.

LitServe's stock batched loop runs ``decode_request``, ``predict`` and ``encode_response`` one after
the other in the worker, so the model idles while images are read and preprocessed, and with
``batch_timeout=0`` it spins on the request queue. This loop (a ``LitLoop``, LitServe's extension
point for serving loops) splits the work:

* an intake thread blocks on the request queue and hands each image to the decode pool as soon as
  its request arrives (texts are tokenized at once, it is cheap);
* the model thread takes every request whose items are ready, up to ``EMBEDDING_MAX_BATCH_SIZE``
  items (waiting ``EMBEDDING_BATCH_TIMEOUT_MS`` for more), embeds texts first (queries are
  latency-sensitive), then images, and answers each request.

So while the model embeds one batch, the next one is being decoded.

A request that has waited longer than LitServe's request timeout (``LitServer(timeout=...)``, set
below the clients' timeout) when it is taken in, or when its batch would start, is answered 504
instead of computed: its client has given up on it, or is about to.

The worker stops when the server stops: the server terminates it (``server.py``); if its request
queue's manager goes away first, the intake thread ends, every request already taken in is
answered, and the loop returns.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException
from litserve.loops.base import LitLoop
from litserve.utils import LitAPIStatus, LoopResponseType

from embedding.api import EmbeddingAPI, Job

log = logging.getLogger(__name__)


@dataclass
class Ready:
    """A request whose items are decoded (``job``), or that failed as a whole (``error``)."""

    response_queue_id: int
    uid: str
    submitted_at: float  # time.monotonic() when the HTTP process queued it (one clock for all processes)
    job: Job | None = None
    error: Exception | None = None

    @property
    def items(self) -> int:
        return len(self.job.inputs) if self.job else 0


_STOP = object()


def timed_out(lit_api: EmbeddingAPI, submitted_at: float) -> bool:
    """Whether a request has waited past the server's request timeout (False when there is none)."""
    limit = lit_api.request_timeout
    return limit not in (None, False, -1) and time.monotonic() - submitted_at > float(limit)


def _timeout_error() -> HTTPException:
    return HTTPException(504, "Request timed out: it waited too long for the model")


class PipelinedLoop(LitLoop):
    def __call__(  # type: ignore[override]
        self,
        lit_api: EmbeddingAPI,
        device: str,
        worker_id: int,
        request_queue: Any,
        transport: Any,
        workers_setup_status: dict[int, str],
        callback_runner: Any,
    ) -> None:
        try:
            lit_api.load()
        except Exception:
            log.exception("the model could not be loaded: this worker stops, and the server with it")
            raise SystemExit(1) from None
        ready: queue.Queue[Ready | object] = queue.Queue()
        intake = threading.Thread(target=self._intake, args=(lit_api, request_queue, ready), daemon=True, name="intake")
        intake.start()
        while (batch := self._next_batch(lit_api, ready)) is not None:
            self._answer(lit_api, batch, transport)

    # -- intake thread -------------------------------------------------------------------------

    def _intake(self, lit_api: EmbeddingAPI, request_queue: Any, ready: queue.Queue[Ready | object]) -> None:
        try:
            while True:
                response_queue_id, uid, submitted_at, request = request_queue.get()
                if timed_out(lit_api, submitted_at):
                    ready.put(Ready(response_queue_id, uid, submitted_at, error=_timeout_error()))
                    continue

                def deliver(job: Job, rq: int = response_queue_id, uid: str = uid, at: float = submitted_at) -> None:
                    ready.put(Ready(rq, uid, at, job=job))

                try:
                    lit_api.decode_async(request, deliver)
                except Exception as exc:
                    log.exception("could not decode a request")
                    ready.put(Ready(response_queue_id, uid, submitted_at, error=exc))
        except (EOFError, OSError):  # the server's queue manager went away: the server is stopping
            return
        finally:
            lit_api.decode_pool.shutdown(wait=True)  # every request taken in gets its answer first
            ready.put(_STOP)

    # -- model thread ---------------------------------------------------------------------------

    def _next_batch(self, lit_api: EmbeddingAPI, ready: queue.Queue[Ready | object]) -> list[Ready] | None:
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

    def _answer(self, lit_api: EmbeddingAPI, batch: list[Ready], transport: Any) -> None:
        for entry in batch:
            if entry.error is None and timed_out(lit_api, entry.submitted_at):
                entry.error, entry.job = _timeout_error(), None
        for entry in batch:
            if entry.error is not None:
                self.put_error_response(transport, entry.response_queue_id, entry.uid, entry.error)
        for kind in ("text", "image"):
            group = [entry for entry in batch if entry.job is not None and entry.job.kind == kind]
            if not group:
                continue
            try:
                results = lit_api.predict([entry.job for entry in group if entry.job is not None])
                answers = [lit_api.encode_response(result) for result in results]
            except Exception as exc:
                log.exception("embedding a batch of %d %s requests failed", len(group), kind)
                for entry in group:
                    self.put_error_response(transport, entry.response_queue_id, entry.uid, exc)
                continue
            for entry, answer in zip(group, answers, strict=True):
                self.put_response(
                    transport, entry.response_queue_id, entry.uid, answer, LitAPIStatus.OK, LoopResponseType.REGULAR
                )
