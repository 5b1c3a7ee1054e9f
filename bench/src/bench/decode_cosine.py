"""``python -m bench decode_cosine``: what decoding a JPEG at reduced scale changes in its vector.

The embedding service decodes a JPEG at the smallest DCT scale whose sides still cover the model's
input (``EMBEDDING_REDUCED_DECODE``, :func:`dyimages_common.images.decode.open_image`). This measures,
per photo, the cosine between the vector of the full decode and that of the reduced decode, both
through the same code path (``open_image`` with and without ``min_side``) and OpenCLIP's own eval
transform and image tower, one process. Photos: 12 MP camera JPEGs (4032x3024, quality 90, camera
EXIF, some stored sideways) made from scikit-image's natural photographs, upscaled with sensor-like
noise, so they have a photo's edges and texture rather than flat colours. The model is ViT-B-32 with
seeded random weights unless ``--pretrained`` names a checkpoint file (no weights can be downloaded
here): a random tower is as sensitive to pixel changes as a trained one (test_parity.py shows it
separates a wrong resize filter at 1e-4 per element).

``cosines(files)`` is what ``python -m bench library`` calls for its ``min_cosine_reduced_decode`` and
``p1_cosine_reduced_decode``.
"""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image
from skimage import data as photographs

from dyimages_common.images.decode import open_image
from testkit.exif_photos import exif_block

REQUIRED = ("photos", "photo_megapixels", "model", "min_cosine_reduced_decode", "p1_cosine_reduced_decode")
SCENES = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field", "camera")
PHOTO_SIZE = (4032, 3024)
LIMITS = {"max_bytes": 100 * 2**20, "max_pixels": 100_000_000}


def camera_photo(index: int, size: tuple[int, int] = PHOTO_SIZE) -> bytes:
    """A 12 MP camera JPEG from a natural photograph: upscaled, sensor noise, camera EXIF; every third
    one stored sideways (pixels turned, Orientation 6) as a phone held upright stores it."""
    scene = getattr(photographs, SCENES[index % len(SCENES)])()
    image = Image.fromarray(scene).convert("RGB")
    crop = (index * 7) % 20  # each photo a slightly different framing
    image = image.crop((crop, crop, image.width - crop, image.height - crop)).resize(size, Image.Resampling.LANCZOS)
    noise = np.random.default_rng(index).normal(0, 4, (size[1], size[0], 3))
    image = Image.fromarray(np.clip(np.asarray(image, dtype=np.float32) + noise, 0, 255).astype(np.uint8))
    sideways = index % 3 == 2
    if sideways:
        image = image.transpose(Image.Transpose.ROTATE_90)
    exif = exif_block(make="Canon", model="EOS R6", taken="2024:05:06 07:08:09", orientation=6 if sideways else 1)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
    return buffer.getvalue()


def _model(pretrained: str | None):
    import open_clip
    import torch

    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=pretrained)
    model.eval()
    return model, preprocess


def cosines(files: Iterable[Path | bytes], *, pretrained: str | None = None, side: int = 224) -> list[float]:
    """Per JPEG (other formats are skipped: only JPEGs are decoded at reduced scale), the cosine between
    its vector from a full decode and from the reduced decode the service makes."""
    import torch

    model, preprocess = _model(pretrained)
    found: list[float] = []
    for file in files:
        data = file if isinstance(file, bytes) else Path(file).read_bytes()
        if not data.startswith(b"\xff\xd8\xff"):
            continue
        full = open_image(data, **LIMITS)
        reduced = open_image(data, **LIMITS, min_side=side)
        with torch.inference_mode():
            pair = model.encode_image(torch.stack([preprocess(full), preprocess(reduced)]))
        pair = pair / pair.norm(dim=-1, keepdim=True)
        found.append(float(pair[0] @ pair[1]))
    return found


def run(argv: list[str]) -> dict[str, object]:
    parser = argparse.ArgumentParser(prog="python -m bench decode_cosine")
    parser.add_argument("--quick", action="store_true", help="7 photos instead of 21")
    parser.add_argument("--pretrained", default=None, help="an OpenCLIP ViT-B-32 checkpoint file")
    args = parser.parse_args(argv)
    photos = [camera_photo(index) for index in range(7 if args.quick else 21)]
    found = np.asarray(cosines(photos, pretrained=args.pretrained), dtype=np.float64)
    return {
        "photos": len(found),
        "photo_megapixels": round(PHOTO_SIZE[0] * PHOTO_SIZE[1] / 1e6, 1),
        "model": f"ViT-B-32 ({args.pretrained or 'random weights, seed 0'})",
        "min_cosine_reduced_decode": round(float(found.min()), 6),
        "p1_cosine_reduced_decode": round(float(np.percentile(found, 1)), 6),
        "mean_cosine_reduced_decode": round(float(found.mean()), 6),
    }
