"""The in-process reference encoder: the service's model on the service's runtime, without the service.

One :class:`Encoder` runs one runtime, as the embedding service would with the same settings:

* ``torch``: OpenCLIP in PyTorch (``create_model_and_transforms``, its eval ``preprocess``,
  ``encode_image``/``encode_text``, L2 normalisation); text cut after <end_of_text> the way the
  torch runtime cuts it (:func:`embedding.text_trim.encode_text_trimmed`), or not, on request;
* ``onnx``: ONNX Runtime sessions on the service's exported bundle, with the service's session
  options (threads, graph optimisation, spinning), the bundle's NumPy preprocessing and tokenizer;
  text cut after <end_of_text> as the ONNX runtime cuts it, or all 77 ids, on request.

Images: files read from disk and decoded as the service decodes them (:func:`open_image`: the same
checks, upright, a JPEG at the reduced scale the service's settings ask for), preprocessed by a pool
of as many threads as the service's decode pool, the next batch while the model runs on this one (as
the service overlaps them), stacked in batches of the service's size. No HTTP, no request parsing, no
path checks, no batching across requests: a strict subset of the service's work, so the service
cannot be faster.

:class:`EncoderWorker` runs an Encoder in a spawned child that starts its own session (as the
service does: testkit starts it with ``start_new_session``). With the kernel's autogroup scheduling
CPU time is shared between sessions, so a side in the caller's session would get another share of a
busy CPU than the service, and the ratio would measure the scheduler, not the code.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

RUNTIMES = ("torch", "onnx")


def resolved_runtime(choice: str) -> str:
    """The runtime a service with ``EMBEDDING_RUNTIME=choice`` runs on this machine's CPU (``auto``: its pick)."""
    if choice != "auto":
        return choice
    from embedding.runtime import resolve_runtime
    from embedding.settings import EmbeddingSettings

    return resolve_runtime(EmbeddingSettings(device="cpu")).name


class Encoder:
    """One runtime's model in this process; ``env`` holds the service's MODEL_* and EMBEDDING_* settings."""

    def __init__(self, runtime: str, env: Mapping[str, str], threads: int, decode_threads: int) -> None:
        os.environ.update(env)
        from embedding.settings import EmbeddingSettings

        settings = EmbeddingSettings()
        self.runtime, self.decode_threads = runtime, decode_threads
        self.max_bytes, self.max_pixels = settings.max_image_bytes, settings.max_image_pixels
        self.device = "cuda" if settings.device == "cuda" else "cpu"
        if runtime == "torch":
            import torch

            from embedding.model import LoadedModel

            torch.set_num_threads(threads)
            self.torch = torch
            self.loaded = LoadedModel.load(settings, self.device)
            self.preprocess: Any = self.loaded.preprocess
        else:
            from embedding.onnx_bundle import find_bundle
            from embedding.onnx_runtime import OnnxModel

            self.onnx = OnnxModel(find_bundle(settings), self.device, threads, settings.embedding_onnx_optimization)
            self.preprocess = self.onnx.preprocess
        from embedding.preprocess import input_side

        self.decode_side = input_side(self.preprocess) if settings.embedding_reduced_decode else None

    def device_type(self) -> str:
        if self.runtime == "torch":
            return next(self.loaded.model.parameters()).device.type
        return "cuda" if "CUDAExecutionProvider" in self.onnx.image_session.get_providers() else "cpu"

    def embed_images(self, pixels: list[Any]) -> np.ndarray:
        """Preprocessed images -> unit vectors (N, dim)."""
        if self.runtime == "onnx":
            return self.onnx.image_session.run(None, {"pixels": np.stack(pixels)})[0]
        return self.loaded.encode_images(self.torch.stack(pixels)).numpy()

    def raw_images_per_s(self, batch: int, images: int) -> float:
        """The image tower alone on ready pixels (information: the model's own ceiling)."""
        pixels = [self.preprocess(Image.new("RGB", (256, 256), (120, 60, 30)))] * batch
        self.embed_images(pixels)  # warm-up
        rounds = max(1, images // batch)
        started = time.perf_counter()
        for _ in range(rounds):
            self.embed_images(pixels)
        return rounds * batch / (time.perf_counter() - started)

    def decode(self, path: Path) -> Any:
        """One stored file as the model's input, decoded and preprocessed as the service does it."""
        from dyimages_common.images.decode import open_image

        data = path.read_bytes()
        image = open_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels, min_side=self.decode_side)
        return self.preprocess(image)

    def images_per_s(self, images_dir: Path, paths: list[str], batch: int) -> float:
        """Files to unit vectors, ``batch`` at a time, decoding the next batch while the model runs."""
        chunks = [paths[i : i + batch] for i in range(0, len(paths), batch)]
        with ThreadPoolExecutor(self.decode_threads) as pool:

            def submit(chunk: list[str]) -> list[Future[Any]]:
                return [pool.submit(self.decode, images_dir / path) for path in chunk]

            started = time.perf_counter()
            upcoming = submit(chunks[0])
            for number in range(len(chunks)):
                current = upcoming
                if number + 1 < len(chunks):
                    upcoming = submit(chunks[number + 1])
                vectors = self.embed_images([future.result() for future in current])
                assert vectors.shape[0] == len(current)
            return len(paths) / (time.perf_counter() - started)

    def _text(self, text: str, trim: bool) -> tuple[float, np.ndarray]:
        """One text through the text tower (tokenised before the clock starts): (ms, unit vector)."""
        if self.runtime == "onnx":
            ids = self.onnx.tokenizer([text])
            if trim:
                ids = ids[:, : int(ids.argmax(axis=1).max()) + 1]
            started = time.perf_counter()
            vector = self.onnx.text_session.run(None, {"tokens": ids})[0]
            return (time.perf_counter() - started) * 1000, vector[0]
        from embedding.text_trim import encode_text_trimmed

        tokens = self.loaded.tokenizer([text]).to(self.loaded.device)
        with self.torch.inference_mode():
            started = time.perf_counter()
            features = encode_text_trimmed(self.loaded.model, tokens) if trim else self.loaded.model.encode_text(tokens)
            features = features.float()
            vector = (features / features.norm(dim=-1, keepdim=True)).cpu()
            return (time.perf_counter() - started) * 1000, vector.numpy()[0]

    def text_ms(self, text: str, trim: bool = True) -> float:
        """One text's latency in ms, its ids cut after <end_of_text> (as the service does) or all of them."""
        return self._text(text, trim)[0]

    def text_timed(self, text: str) -> tuple[float, list[float]]:
        """One text's latency in ms (cut as the service cuts it) and its unit vector (for a store search)."""
        elapsed, vector = self._text(text, trim=True)
        return elapsed, vector.tolist()


def _serve(conn: Connection, runtime: str, env: dict[str, str], threads: int, decode_threads: int) -> None:
    os.setsid()  # its own session and scheduling group, like the service (see the module docstring)
    encoder = Encoder(runtime, env, threads, decode_threads)
    conn.send("ready")
    while (call := conn.recv()) is not None:
        name, args = call
        conn.send(getattr(encoder, name)(*args))


class EncoderWorker:
    """An :class:`Encoder` in a child process of its own session; calls go over a pipe, one at a time."""

    def __init__(self, runtime: str, env: Mapping[str, str], threads: int, decode_threads: int = 1) -> None:
        context = multiprocessing.get_context("spawn")
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_serve, args=(child, runtime, dict(env), threads, decode_threads), daemon=True
        )
        self._process.start()
        if not self._conn.poll(600) or self._conn.recv() != "ready":
            self.close()
            raise RuntimeError(f"the {runtime} reference encoder did not start")
        self.runtime = runtime

    def call(self, name: str, *args: object) -> Any:
        self._conn.send((name, args))
        return self._conn.recv()

    def close(self) -> None:
        if self._process.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(None)
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> EncoderWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
