"""Assembling and running the LitServe server, with a lifecycle that leaves no process behind.

LitServe (the version pinned in :mod:`embedding.litserve_compat`) answers HTTP in forked uvicorn
processes and runs the model in spawned worker processes. Its main process only handles Ctrl+C
(KeyboardInterrupt) gracefully; SIGTERM, which ``docker compose stop`` sends, would kill the main
process alone and orphan the rest. So SIGTERM is turned into the same KeyboardInterrupt, and
whatever child is still alive at the end is stopped.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from types import FrameType

import litserve as ls
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from dyimages_common.embeddings.wire import INFO_PATH, ModelInfo, server_request_timeout
from embedding import metrics
from embedding.api import EmbeddingAPI
from embedding.litserve_compat import route_logs_to_ours, without_gzip
from embedding.settings import EmbeddingSettings

log = logging.getLogger(__name__)

METRICS_PATH = "/metrics"
# LitServe's own /info (its server config) moves aside: /info is the API's ModelInfo.
LITSERVE_INFO_PATH = "/litserve/info"


def build_server(settings: EmbeddingSettings, info: ModelInfo, request_timeout_s: float) -> ls.LitServer:
    """The LitServer; a request still waiting for its batch after ``request_timeout_s`` is answered 504."""
    api = EmbeddingAPI(settings, info)
    server = ls.LitServer(
        api,
        accelerator="cuda" if info.device == "cuda" else "cpu",
        devices="auto",
        workers_per_device=settings.embedding_workers,
        # LitServe answers 504 to a request that waited this long for the model (the serving loop
        # checks it): below the clients' EMBEDDING_TIMEOUT_S, so the service never computes a batch
        # its client has given up on and will send again.
        timeout=request_timeout_s,
        info_path=LITSERVE_INFO_PATH,
        max_payload_size=settings.embedding_max_request_bytes,
        middlewares=[metrics.EmbedMetricsMiddleware],
    )

    api.expected_workers = len(server.devices) * settings.embedding_workers
    # LitServe gzips every response; vectors compress poorly (about 2x) and level-9 gzip costs more
    # CPU than the JSON itself (0.4 s for 256 vectors), so answers go out uncompressed.
    without_gzip(server)

    async def model_info(request: Request) -> JSONResponse:
        return JSONResponse(info.model_dump())

    async def prometheus(request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    server.app.add_route(INFO_PATH, model_info, methods=["GET"])
    server.app.add_route(METRICS_PATH, prometheus, methods=["GET"])
    return server


def _sigterm_as_interrupt() -> None:
    main_pid = os.getpid()

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != main_pid:  # a forked child that kept this handler: plain SIGTERM
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        log.info("SIGTERM received: stopping every worker")
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _stop_children(grace_s: float = 10.0) -> None:
    """Terminate, then kill, every child process still alive (LitServe's shutdown can be cut short)."""
    children = multiprocessing.active_children()
    for child in children:
        child.terminate()
    for child in children:
        child.join(grace_s)
        if child.is_alive():
            log.warning("worker %s (pid %s) ignored SIGTERM: killing it", child.name, child.pid)
            child.kill()
            child.join(grace_s)


def serve(settings: EmbeddingSettings, info: ModelInfo) -> int:
    """Run until SIGTERM or SIGINT; 0 after a clean stop, 1 if the server failed."""
    _sigterm_as_interrupt()
    route_logs_to_ours()
    server = build_server(settings, info, server_request_timeout(settings.embedding_timeout_s))
    log.info(
        "serving %s (%s) on %s:%d, device %s",
        info.model,
        info.pretrained,
        settings.embedding_host,
        settings.embedding_port,
        info.device,
    )
    try:
        server.run(
            host=settings.embedding_host,
            port=settings.embedding_port,
            num_api_servers=settings.embedding_api_servers,
            log_level=settings.log_level.lower(),
            generate_client_file=False,
            log_config=None,
        )
    except KeyboardInterrupt:
        log.info("interrupted")
    except (EOFError, ConnectionError):  # LitServe closed its queues: a model worker died
        log.error("the embedding server stopped because a model worker died (its error is above)")
        return 1
    except Exception:
        log.exception("the embedding server failed")
        return 1
    finally:
        _stop_children()
    log.info("stopped")
    return 0
