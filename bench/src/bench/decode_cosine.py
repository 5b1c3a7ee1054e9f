"""``python -m bench decode_cosine [--quick]``: what decoding a JPEG at reduced scale changes in its vector.

The embedding service decodes a JPEG at the smallest DCT scale whose sides are still at least
``REDUCING_GAP`` (3) times the model's input side (``EMBEDDING_REDUCED_DECODE``,
:func:`dyimages_common.images.decode.open_image`). This measures,
per photo, the cosine between the vector of the full decode and that of the reduced decode, both
through the service's own decode (``open_image`` without and with ``min_side``, the side taken from
the model's transform by :func:`embedding.preprocess.input_side`, as the service takes it), OpenCLIP's
eval transform and image tower, in one process, for two models:

* ViT-B-32 (the default architecture) with seeded random weights, or ``--pretrained`` a checkpoint
  file (no weights can be downloaded here): a random tower reacts to pixel changes as a trained one
  does (test_parity.py shows it separates a wrong resize filter at 1e-4 per element);
* the trained demo model (``dy-demo``, 64 px input), a model whose vectors carry meaning.

Photos: 12 MP camera JPEGs (4032x3024, quality 90, camera EXIF, every third stored sideways) made
from scikit-image's natural photographs, upscaled with sensor-like noise, so they have a photo's
edges and texture rather than flat colours; and the worst sizes for each model, whose shorter side
is ``REDUCING_GAP`` times the model's input side times 2, 4 or 8 (up to the camera's 3024), so the
DCT-scaled decode lands exactly on the gap and the resize after it shrinks the least. The decision
rule (docs/architecture.md): reduced decode stays on by default while the 1st-percentile cosine is
at least :data:`RULE_P1` for every model.

The CPU seconds of the two decodes of a 12 MP photo (one thread, this process) are reported beside,
with their ratio. ``cosines(files)`` is what ``python -m bench library`` calls for its
``min_cosine_reduced_decode`` and ``p1_cosine_reduced_decode``.
"""

from __future__ import annotations

import argparse
import io
import math
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage import data as photographs

from bench.figures import Limit
from dyimages_common.images.decode import REDUCING_GAP, open_image
from testkit import DEMO_CHECKPOINT, DEMO_MODEL, DEMO_MODEL_CONFIG
from testkit.exif_photos import exif_block

SCENES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "camera")
PHOTO_SIZE = (4032, 3024)
DECODE_LIMITS = {"max_bytes": 100 * 2**20, "max_pixels": 100_000_000}
RULE_P1 = 0.995
COSINES = ("min_cosine_reduced_decode", "p1_cosine_reduced_decode")
REQUIRED = (
    "photos",
    "photo_megapixels",
    *COSINES,
    "models",
    "rule_p1",
    "reducing_gap",
    "rule_holds",
    "decode_cpu_s_full",
    "decode_cpu_s_reduced",
    "decode_cpu_ratio",
)
LIMITS = {name: Limit(at_least=-1.000001, at_most=1.000001, why="a cosine lies in [-1, 1]") for name in COSINES}


def camera_photo(index: int, size: tuple[int, int] = PHOTO_SIZE) -> bytes:
    """A camera JPEG (12 MP unless ``size``) from a natural photograph: upscaled, sensor noise, camera
    EXIF; every third one stored sideways (pixels turned, Orientation 6) as a phone held upright stores it."""
    scene = getattr(photographs, SCENES[index % len(SCENES)])()
    image = Image.fromarray(scene).convert("RGB")
    crop = (index * 7) % 20  # each photo a slightly different framing
    image = image.crop((crop, crop, image.width - crop, image.height - crop)).resize(size, Image.Resampling.LANCZOS)
    noise = np.random.default_rng(index).standard_normal((size[1], size[0], 3), dtype=np.float32) * 4
    image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
    sideways = index % 3 == 2
    if sideways:
        image = image.transpose(Image.Transpose.ROTATE_90)
    exif = exif_block(make="Canon", model="EOS R6", taken="2024:05:06 07:08:09", orientation=6 if sideways else 1)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def edge_sizes(side: int) -> list[tuple[int, int]]:
    """4:3 sizes whose shorter side is REDUCING_GAP x ``side`` x 2, 4 or 8 (at most a 12 MP camera's):
    decoded at 1/2, 1/4 or 1/8, they leave the resize the least shrinking to do."""
    shorts = [math.ceil(REDUCING_GAP * side * factor) for factor in (2, 4, 8)]
    return [(short * 4 // 3, short) for short in shorts if short <= PHOTO_SIZE[1]]


@dataclass
class Tower:
    """One model's eval transform and image tower, and the input side the service would decode for."""

    name: str
    model: Any
    preprocess: Any
    side: int

    def cosine(self, full: Image.Image, reduced: Image.Image) -> float:
        import torch

        with torch.inference_mode():
            pair = self.model.encode_image(torch.stack([self.preprocess(full), self.preprocess(reduced)]))
        pair = pair / pair.norm(dim=-1, keepdim=True)
        return float(pair[0] @ pair[1])


def tower(which: str, pretrained: str | None = None) -> Tower:
    """``vit-b-32`` (seeded random weights unless ``pretrained``) or ``demo`` (the trained demo model)."""
    import open_clip
    import torch

    from embedding.preprocess import input_side

    torch.manual_seed(0)
    if which == "demo":
        open_clip.add_model_config(DEMO_MODEL_CONFIG)
        name, pretrained, label = DEMO_MODEL, str(DEMO_CHECKPOINT), f"{DEMO_MODEL} (trained demo model)"
    else:
        name, label = "ViT-B-32", f"ViT-B-32 ({pretrained or 'random weights, seed 0'})"
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=pretrained)
    model.eval()
    side = input_side(preprocess)
    assert side is not None, f"{name}: no input side in its transform"
    return Tower(label, model, preprocess, side)


def _jpegs(files: Iterable[Path | bytes]) -> Iterator[bytes]:
    for file in files:
        data = file if isinstance(file, bytes) else Path(file).read_bytes()
        if data.startswith(b"\xff\xd8\xff"):  # only JPEGs are decoded at reduced scale
            yield data


def tower_cosines(model: Tower, files: Iterable[Path | bytes]) -> list[float]:
    """Per JPEG, the cosine between ``model``'s vector of its full decode and of the service's reduced decode."""
    return [
        model.cosine(open_image(data, **DECODE_LIMITS), open_image(data, **DECODE_LIMITS, min_side=model.side))
        for data in _jpegs(files)
    ]


def cosines(files: Iterable[Path | bytes], *, pretrained: str | None = None) -> list[float]:
    """Per JPEG (other formats are skipped), the full- vs reduced-decode cosine on ViT-B-32."""
    return tower_cosines(tower("vit-b-32", pretrained), files)


def _summary(found: list[float]) -> dict[str, float]:
    values = np.asarray(found, dtype=np.float64)
    return {
        "photos": len(found),
        "min": round(float(values.min()), 6),
        "p1": round(float(np.percentile(values, 1)), 6),
        "mean": round(float(values.mean()), 6),
    }


def decode_cpu(photos: list[bytes], side: int) -> tuple[float, float]:
    """CPU seconds per photo of the full and of the reduced decode, each photo decoded both ways in turn."""
    spent = {None: 0.0, side: 0.0}
    for data in photos:
        for min_side in spent:
            start = time.process_time()
            open_image(data, **DECODE_LIMITS, min_side=min_side)
            spent[min_side] += time.process_time() - start
    return spent[None] / len(photos), spent[side] / len(photos)


def run(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(prog="python -m bench decode_cosine")
    parser.add_argument("--quick", action="store_true", help="7 camera photos instead of 35")
    parser.add_argument("--pretrained", default=None, help="an OpenCLIP ViT-B-32 checkpoint file")
    args = parser.parse_args(argv)
    camera = [camera_photo(index) for index in range(7 if args.quick else 35)]
    models: dict[str, dict[str, Any]] = {}
    every: list[float] = []
    for model in (tower("vit-b-32", args.pretrained), tower("demo")):
        sizes = edge_sizes(model.side)  # every scene at every size, a third of them stored sideways
        edges = [camera_photo(index, sizes[index // len(SCENES)]) for index in range(len(sizes) * len(SCENES))]
        on_camera, on_edges = tower_cosines(model, camera), tower_cosines(model, edges)
        found = on_camera + on_edges
        every += found
        models[model.name] = {
            "input_side": model.side,
            "camera_12mp": _summary(on_camera),
            "edge_sizes": {"sizes": [f"{w}x{h}" for w, h in sizes], **_summary(on_edges)},
            "all": _summary(found),
            "rule_holds": bool(np.percentile(found, 1) >= RULE_P1),
        }
    full_s, reduced_s = decode_cpu(camera, 224)
    worst = _summary(every)
    return {
        "runtime": "torch",  # OpenCLIP in this process: the decode, not the runtime, is compared
        "photos": len(camera),
        "photo_megapixels": round(PHOTO_SIZE[0] * PHOTO_SIZE[1] / 1e6, 1),
        "min_cosine_reduced_decode": worst["min"],
        "p1_cosine_reduced_decode": min(model["all"]["p1"] for model in models.values()),
        "models": models,
        "rule_p1": RULE_P1,
        "reducing_gap": REDUCING_GAP,
        "rule_holds": all(model["rule_holds"] for model in models.values()),
        "decode_cpu_s_full": round(full_s, 4),
        "decode_cpu_s_reduced": round(reduced_s, 4),
        "decode_cpu_ratio": round(full_s / reduced_s, 2),
    }
