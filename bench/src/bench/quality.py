"""Search quality with the demo model on the test split: ``python -m bench quality [--quick] [--runtime R]``.

The demo world's combinations are split into train, validation and test
(:func:`testkit.demo_world.split_scenes`; the training script draws only the train ones and picks
its learning rate by the validation scores alone). The test combinations, scored here and nowhere
before the model was chosen, are drawn once each, stored as PNG and JPEG, and indexed through the
real services: the embedding service (``python -m embedding`` with ``MODEL_NAME=dy-demo``,
``MODEL_PRETRAINED`` = the checkpoint, its CPU default runtime unless ``--runtime``), the real indexer
over the real RabbitMQ, and an embedded Qdrant folder. Then, through the app's own search function
(:func:`search_app.search.engine.search`):

* ``test_*``, text -> image: each test caption ("a small red circle at the top left on a grey
  background") is searched; its one picture's rank gives recall@1/5/10 and mean reciprocal rank;
* ``test_image_*``, image -> image: each picture's altered copies (resized to 3/4, re-encoded as JPEG
  at quality 40, cropped by 6 % each side) are uploaded as the query; the original's rank.

``baseline_*``: the same queries ranked by a scorer that knows colours and nothing else
(:mod:`demo.baseline`), not the model: what recall has to beat. ``parity_same_ranks``: whether the
service ranks every query exactly as in-process OpenCLIP with the same checkpoint does (same top 10,
the target at the same rank); it checks the serving path, not quality. Ranks do not depend on
machine load; only ``seconds`` does.
"""

from __future__ import annotations

import argparse
import contextlib
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import open_clip
import torch

from bench.encoder import resolved_runtime
from bench.figures import READY_S
from demo import baseline
from demo.scores import retrieval_scores
from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.decode import open_image
from embedding.preprocess import input_side
from embedding.settings import EmbeddingSettings
from search_app.search.engine import search
from search_app.search.model import Query
from search_app.search.vectors import ServiceEmbedder
from testkit import DEMO_CHECKPOINT, DEMO_MODEL, DEMO_MODEL_CONFIG
from testkit.demo_library import demo_model_env, index_stored, new_library, store_picture
from testkit.demo_world import TEST_SEED, Scene, altered_copies, draw, split_scenes
from testkit.embedding import run_embedding_service
from testkit.indexed_library import Library, Picture
from testkit.rabbit import delete_topology, require_rabbitmq, unique_queue_name

TOP = 10
QUICK = 40
SCORES = ("recall_at_1", "recall_at_5", "recall_at_10", "mrr")
REQUIRED = (
    *(f"{kind}_{score}" for kind in ("test", "test_image", "baseline", "baseline_image") for score in SCORES),
    "parity_same_ranks",
    "pictures",
    "text_queries",
    "image_queries",
)


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench quality")
    parser.add_argument("--quick", action="store_true", help=f"the first {QUICK} test pictures instead of all")
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
    """In-process OpenCLIP with the demo checkpoint: vectors of stored files (decoded as the service
    decodes them: :func:`open_image`, a JPEG at the reduced scale its settings ask for) and texts."""

    def __init__(self) -> None:
        open_clip.add_model_config(DEMO_MODEL_CONFIG)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(
            DEMO_MODEL, pretrained=str(DEMO_CHECKPOINT)
        )
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(DEMO_MODEL)
        settings = EmbeddingSettings()
        self.limits = {"max_bytes": settings.max_image_bytes, "max_pixels": settings.max_image_pixels}
        self.min_side = input_side(self.preprocess) if settings.embedding_reduced_decode else None

    @torch.inference_mode()
    def images(self, files: list[bytes]) -> np.ndarray:
        pixels = torch.stack(
            [self.preprocess(open_image(data, **self.limits, min_side=self.min_side)) for data in files]
        )
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


def _ranked(scores: np.ndarray, shas: list[str]) -> list[list[str]]:
    """Per query row, the pictures best score first (ties in pool order)."""
    return [[shas[i] for i in row] for row in np.argsort(-scores, axis=1, kind="stable")]


def _reference_rankings(pool_vectors: np.ndarray, shas: list[str], query_vectors: np.ndarray) -> list[list[str]]:
    return _ranked(query_vectors @ pool_vectors.T, shas)


def _scores(rankings: list[list[str]], targets: list[str]) -> dict[str, float]:
    ranks = [
        ranking.index(target) + 1 if target in ranking else len(ranking) + 1
        for ranking, target in zip(rankings, targets, strict=True)
    ]
    return retrieval_scores(ranks)


def _baseline_rankings(pictures: list[Picture], captions: list[str], copies: list[bytes]) -> list[list[str]]:
    pool = [baseline.pixels(p.data) for p in pictures]
    scores = [baseline.text_scores(c, pool) for c in captions]
    scores += [baseline.image_scores(baseline.pixels(data), pool) for data in copies]
    return _ranked(np.asarray(scores), [p.sha256 for p in pictures])


def scored_scenes(quick: bool) -> list[tuple[int, Scene]]:
    """(index in the test split, scene): the split's first :data:`QUICK` with ``quick``, else all."""
    test = list(enumerate(split_scenes().test))
    return test[:QUICK] if quick else test


def _same(service: list[list[str]], reference: list[list[str]], targets: list[str]) -> bool:
    return all(
        s[:TOP] == r[:TOP] and s.index(t) == r.index(t) for s, r, t in zip(service, reference, targets, strict=True)
    )


def run(argv: list[str]) -> dict[str, Any]:
    args = _parse(argv)
    scenes = scored_scenes(args.quick)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-quality-") as tmp, _queue() as queue:
        workdir = Path(tmp)
        images_dir = workdir / "images"
        images_dir.mkdir()
        drawn = [draw(scene, TEST_SEED + index) for index, scene in scenes]
        pictures: list[Picture] = [
            store_picture(images_dir, image, (f"https://demo.example/{i}.png",), "png" if i % 2 == 0 else "jpeg")
            for i, image in enumerate(drawn)
        ]
        captions = [scene.caption() for _, scene in scenes]
        copies = [(i, data) for i, image in enumerate(drawn) for data in altered_copies(image).values()]
        copy_files = [data for _, data in copies]
        with run_embedding_service(
            images_dir, workdir, ready_timeout_s=READY_S, **demo_model_env(), EMBEDDING_RUNTIME=args.runtime
        ) as service:
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
        baseline_rankings = _baseline_rankings(pictures, captions, copy_files)
    targets = shas + [shas[i] for i, _ in copies]
    n_text = len(captions)
    figures: dict[str, Any] = {
        "quick": args.quick,
        "runtime": resolved_runtime(args.runtime),
        "model": DEMO_MODEL,
        "pictures": len(pictures),
        "text_queries": n_text,
        "image_queries": len(copy_files),
    }
    for prefix, rankings in (("test", service_rankings), ("baseline", baseline_rankings)):
        figures |= {f"{prefix}_{k}": v for k, v in _scores(rankings[:n_text], targets[:n_text]).items()}
        figures |= {f"{prefix}_image_{k}": v for k, v in _scores(rankings[n_text:], targets[n_text:]).items()}
    return figures | {
        "parity_same_ranks": _same(service_rankings, reference_rankings, targets),
        "parity_queries": len(targets),
        "seconds": round(time.monotonic() - started, 1),
    }
