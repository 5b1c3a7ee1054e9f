"""A phone photo stored sideways is found by a text query as well as its upright twin (the demo model).

Phones store most photos as the sensor saw them and say in EXIF Orientation how to turn them. The
twins here are one demo-world picture (a large red triangle at the top left on white, 512 px, so a
JPEG is also decoded at reduced scale for the model's 64 px input) stored four ways: upright; its
pixels turned a quarter left with Orientation 6; a quarter right with Orientation 8 (both JPEG); and
as a HEIC turned with Orientation 6, which pillow-heif writes as the file's own rotation. The
distractors are the same triangle at every other position and the triangle in other colours at the
same position. Every picture is stored as the downloader stores it and embedded by the real
embedding service (the demo model through its normal settings, see conftest.py); the query is
embedded by the same service and the pictures ranked by cosine, as the index ranks them.

"As well as" means: each twin, ranked among the distractors, takes the rank its upright twin takes
(the first), and its score is within :data:`TOLERANCE` of the upright twin's. The twins differ only
by how the codec quantised the turned pixels (a JPEG's quantisation tables are not symmetric in x
and y; HEIC is another codec); that moves the score by about 1e-3, while the nearest distractor
scores about 0.08 lower and an unturned twin about 0.4 lower. The tolerance sits between: ten times
the codec's effect, an eighth of the distance to the nearest distractor.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.heif import register_heif
from testkit.demo_world import COLOURS, POSITIONS, Scene, draw
from testkit.embedding import EmbeddingService
from testkit.exif_photos import exif_block
from testkit.storage import store

pytestmark = pytest.mark.integration

TOLERANCE = 0.01
TARGET = Scene("triangle", "red", "large", "at the top left", "white")
SIDE = 512
# The stored pixels of each twin (the upright picture turned the other way) and the Orientation that turns them back.
TWINS = {
    "upright": ("jpg", None, None),
    "jpeg, orientation 6": ("jpg", Image.Transpose.ROTATE_90, 6),
    "jpeg, orientation 8": ("jpg", Image.Transpose.ROTATE_270, 8),
    "heic, orientation 6": ("heic", Image.Transpose.ROTATE_90, 6),
}


def _encoded(image: Image.Image, extension: str, orientation: int | None) -> bytes:
    register_heif()
    buffer = io.BytesIO()
    exif = exif_block(orientation=orientation).tobytes() if orientation else b""
    if extension == "heic":
        image.save(buffer, "HEIF", quality=85, exif=exif, enc_params={"preset": "ultrafast"})
    else:
        image.save(buffer, "JPEG", quality=90, exif=exif)
    return buffer.getvalue()


def _pictures(images_dir: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The twins and the distractors, stored in ``images_dir``: their stored paths by name."""
    upright = draw(TARGET, 7, SIDE)
    twins = {}
    for name, (extension, stored_turn, orientation) in TWINS.items():
        stored = upright if stored_turn is None else upright.transpose(stored_turn)
        twins[name] = store(images_dir, _encoded(stored, extension, orientation), extension)
    scenes = [Scene(TARGET.shape, TARGET.colour, TARGET.size, p, TARGET.background) for p in POSITIONS]
    scenes += [Scene(TARGET.shape, c, TARGET.size, TARGET.position, TARGET.background) for c in COLOURS]
    distractors = {
        f"{scene.colour} {scene.position}": store(images_dir, _encoded(draw(scene, 20 + i, SIDE), "jpg", None), "jpg")
        for i, scene in enumerate(scenes)
        if scene != TARGET
    }
    return twins, distractors


def _scores(client: EmbeddingClient, paths: dict[str, str], query: np.ndarray) -> dict[str, float]:
    result = client.embed_image_paths(list(paths.values()))
    assert result.errors == [None] * len(paths), result.errors
    return {name: float(vector @ query) for name, vector in zip(paths, result.vectors, strict=True)}


def test_a_sideways_photo_is_found_as_well_as_its_upright_twin(demo_embedding: EmbeddingService) -> None:
    twins, distractors = _pictures(Path(demo_embedding.env["IMAGES_DIR"]))
    with EmbeddingClient(demo_embedding.url) as client:
        query = client.embed_texts([TARGET.caption()])[0]
        twin_scores = _scores(client, twins, query)
        distractor_scores = _scores(client, distractors, query)
    print("twins:", twin_scores, "best distractor:", max(distractor_scores.items(), key=lambda item: item[1]))

    def rank(score: float) -> int:
        return 1 + sum(other > score for other in distractor_scores.values())

    upright = twin_scores["upright"]
    assert rank(upright) == 1  # the scene is one the demo model tells apart: the test can see a difference
    for name, score in twin_scores.items():
        assert rank(score) == rank(upright), name
        assert abs(score - upright) <= TOLERANCE, (name, score, upright)
