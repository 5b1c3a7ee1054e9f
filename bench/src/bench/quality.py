"""Search quality with the demo model: ``python -m bench quality [--quick] [--runtime auto|onnx|torch]``.

The held-out combinations of the demo world (:func:`testkit.demo_world.split_scenes`, never drawn for
training) are drawn once each, stored as PNG and JPEG, and indexed through the real services: the
embedding service (``python -m embedding`` with ``MODEL_NAME=dy-demo``, ``MODEL_PRETRAINED`` = the
checkpoint, its CPU default runtime unless ``--runtime``), the real indexer over the real RabbitMQ,
and an embedded Qdrant folder. Then, through the app's own search function
(:func:`search_app.search.engine.search`):

* text -> image: each held-out full caption ("a small red circle at the top left on a grey
  background") is searched; its one picture's rank gives recall@1/5/10 and mean reciprocal rank;
* image -> image: each picture's altered copies (resized to 3/4, re-encoded as JPEG at quality 40,
  cropped by 6 % each side) are uploaded as the query; the original's rank gives the same figures.

The reference is in-process OpenCLIP on the same stored files and texts (``create_model_and_transforms``
with the checkpoint, ``encode_image``/``encode_text``, L2 normalisation, cosine ranking in numpy).
``same_ranks`` is true when every query ranks its target at the same place and has the same top 10
in the service as in the reference. Quality does not depend on machine load; only the run time does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch
from PIL import Image

from demo.scores import retrieval_scores
from demo.train_model import EVAL_SEED
from dyimages_common.embeddings.client import EmbeddingClient
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import ServiceEmbedder
from testkit import DEMO_CHECKPOINT, DEMO_MODEL, DEMO_MODEL_CONFIG
from testkit.demo_library import demo_model_env, index_stored, new_library, store_picture
from testkit.demo_world import altered_copies, draw, split_scenes
from testkit.embedding import run_embedding_service
from testkit.indexed_library import Library, Picture
from testkit.rabbit import delete_topology, require_rabbitmq, unique_queue_name

TOP = 10


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench quality")
    parser.add_argument("--quick", action="store_true", help="40 held-out pictures instead of all 108")
    parser.add_argument("--runtime", choices=("auto", "onnx", "torch"), default="auto", help="EMBEDDING_RUNTIME")
    return parser.parse_args(argv)


@contextlib.contextmanager
def _queue() -> Iterator[str]:
    require_rabbitmq()
    name = unique_queue_name("bench-quality")
    try:
        yield name
    finally:
        delete_topology(name)


class Reference:
    """In-process OpenCLIP with the demo checkpoint: vectors of stored files and texts."""

    def __init__(self) -> None:
        open_clip.add_model_config(DEMO_MODEL_CONFIG)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            DEMO_MODEL, pretrained=str(DEMO_CHECKPOINT)
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(DEMO_MODEL)

    @torch.inference_mode()
    def images(self, files: list[bytes]) -> np.ndarray:
        pixels = torch.stack([self.preprocess(Image.open(io.BytesIO(data)).convert("RGB")) for data in files])
        return torch.nn.functional.normalize(self.model.encode_image(pixels).float(), dim=-1).numpy()

    @torch.inference_mode()
    def texts(self, texts: list[str]) -> np.ndarray:
        return torch.nn.functional.normalize(self.model.encode_text(self.tokenizer(texts)).float(), dim=-1).numpy()


def _service_rankings(library: Library, embedding_url: str, queries: list[Query], pool: int) -> list[list[str]]:
    """Each query's full ranking (sha256s, best first) from the app's search function."""
    client = library.open_index()
    try:
        with EmbeddingClient(embedding_url) as embedding:
            embedder = ServiceEmbedder(embedding)
            return [[hit.sha256 for hit in search(client, embedder, q, limit=pool)] for q in queries]
    finally:
        client.close()


def _reference_rankings(pool_vectors: np.ndarray, shas: list[str], query_vectors: np.ndarray) -> list[list[str]]:
    order = np.argsort(-(query_vectors @ pool_vectors.T), axis=1, kind="stable")
    return [[shas[i] for i in row] for row in order]


def _scores(rankings: list[list[str]], targets: list[str]) -> dict[str, float]:
    ranks = [
        ranking.index(target) + 1 if target in ranking else len(ranking) + 1
        for ranking, target in zip(rankings, targets, strict=True)
    ]
    return retrieval_scores(ranks)


def _same(service: list[list[str]], reference: list[list[str]], targets: list[str]) -> bool:
    return all(
        s[:TOP] == r[:TOP] and s.index(t) == r.index(t) for s, r, t in zip(service, reference, targets, strict=True)
    )


def run(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    _, held_out = split_scenes()
    scenes = held_out[:40] if args.quick else held_out
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp, _queue() as queue:
        workdir = Path(tmp)
        images_dir = workdir / "images"
        images_dir.mkdir()
        drawn = [draw(scene, EVAL_SEED + held_out.index(scene)) for scene in scenes]
        pictures: list[Picture] = [
            store_picture(images_dir, image, (f"https://demo.example/{i}.png",), "png" if i % 2 == 0 else "jpeg")
            for i, image in enumerate(drawn)
        ]
        captions = [scene.caption() for scene in scenes]
        copies = [(i, data) for i, image in enumerate(drawn) for data in altered_copies(image).values()]
        copy_files = [data for _, data in copies]
        extra = {} if args.runtime == "auto" else {"EMBEDDING_RUNTIME": args.runtime}
        with run_embedding_service(images_dir, workdir, **demo_model_env(), **extra) as service:
            library = new_library(workdir, images_dir, queue, service.url)
            index_stored(library, pictures, workdir / "indexer.log")
            queries = [Query(text=c) for c in captions] + [Query(image=data) for data in copy_files]
            service_rankings = _service_rankings(library, service.url, queries, len(pictures))
        reference = Reference()
        shas = [p.sha256 for p in pictures]
        pool = reference.images([p.data for p in pictures])
        reference_rankings = _reference_rankings(pool, shas, reference.texts(captions)) + _reference_rankings(
            pool, shas, reference.images(copy_files)
        )
    targets = shas + [shas[i] for i, _ in copies]
    n_text = len(captions)
    text = _scores(service_rankings[:n_text], targets[:n_text])
    image = _scores(service_rankings[n_text:], targets[n_text:])
    reference_text = _scores(reference_rankings[:n_text], targets[:n_text])
    reference_image = _scores(reference_rankings[n_text:], targets[n_text:])
    figures: dict[str, Any] = {
        "benchmark": "quality",
        "quick": args.quick,
        "runtime": args.runtime,
        "model": DEMO_MODEL,
        "pictures": len(pictures),
        "text_queries": n_text,
        "image_queries": len(copy_files),
        **text,
        **{f"image_{k}": v for k, v in image.items()},
        **{f"reference_{k}": v for k, v in reference_text.items()},
        **{f"reference_image_{k}": v for k, v in reference_image.items()},
        "same_ranks": _same(service_rankings, reference_rankings, targets),
        "seconds": round(time.monotonic() - started, 1),
    }
    return figures
