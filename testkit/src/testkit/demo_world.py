"""The demo model's synthetic world: flat shapes drawn with Pillow, each with the caption that says what it shows.

A scene is one shape (4) in one colour (6) of one size (2) at one position (5) on one background (3):
720 combinations, each drawn with seeded jitter (exact place, size, tint), so one combination makes
any number of distinct images. Captions name every attribute ("a small red circle at the top left
on a grey background"); in training, shorter captions name only some ("a red circle", "a circle at
the bottom right") so short queries mean something too.

The combinations are split three ways (:func:`split_scenes`), not the images: a validation or test
combination is never drawn for training, so their scores measure whether the model composes what
it learnt. The training script picks its settings by the validation scores alone; the test
combinations are scored once, after that choice (``bench quality`` reports them). The split is
fixed by :data:`SPLIT_SEED` and shared by the training script, ``bench quality`` and the tests.
"""

from __future__ import annotations

import io
import itertools
import math
import random
from dataclasses import dataclass
from typing import NamedTuple

from PIL import Image, ImageDraw

SHAPES = ("circle", "square", "triangle", "star")
COLOURS = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (40, 70, 220),
    "yellow": (240, 215, 30),
    "purple": (140, 50, 180),
    "orange": (250, 140, 20),
}
BACKGROUNDS = {"white": (245, 245, 245), "black": (15, 15, 15), "grey": (128, 128, 128)}
SIZES = {"small": 0.12, "large": 0.22}  # radius as a fraction of the side
POSITIONS = {
    "at the top left": (0.27, 0.27),
    "at the top right": (0.73, 0.27),
    "at the bottom left": (0.27, 0.73),
    "at the bottom right": (0.73, 0.73),
    "in the centre": (0.5, 0.5),
}
SPLIT_SEED = 14
VALIDATION_FRACTION = 0.10
TEST_FRACTION = 0.15
# Jitter seeds of the one picture drawn per validation or test combination (far from the training seeds).
VALIDATION_SEED = 2_000_000
TEST_SEED = 1_000_000


@dataclass(frozen=True)
class Scene:
    """One combination of attributes."""

    shape: str
    colour: str
    size: str
    position: str
    background: str

    def caption(self) -> str:
        return f"a {self.size} {self.colour} {self.shape} {self.position} on a {self.background} background"

    def partial_caption(self, rng: random.Random) -> str:
        """A caption naming the shape and a random subset of the other attributes (for training)."""
        size = f"{self.size} " if rng.random() < 0.5 else ""
        colour = f"{self.colour} " if rng.random() < 0.6 else ""
        position = f" {self.position}" if rng.random() < 0.5 else ""
        background = f" on a {self.background} background" if rng.random() < 0.5 else ""
        return f"a {size}{colour}{self.shape}{position}{background}"


def all_scenes() -> list[Scene]:
    return [Scene(*combo) for combo in itertools.product(SHAPES, COLOURS, SIZES, POSITIONS, BACKGROUNDS)]


class Splits(NamedTuple):
    """Disjoint sets of combinations: drawn for training, scored to choose settings, scored once at the end."""

    train: list[Scene]
    validation: list[Scene]
    test: list[Scene]


def split_scenes(seed: int = SPLIT_SEED) -> Splits:
    """A seeded shuffle of every combination: the last :data:`TEST_FRACTION` for test, the
    :data:`VALIDATION_FRACTION` before them for validation, the rest for training."""
    scenes = all_scenes()
    random.Random(seed).shuffle(scenes)
    test_cut = len(scenes) - round(len(scenes) * TEST_FRACTION)
    validation_cut = test_cut - round(len(scenes) * VALIDATION_FRACTION)
    return Splits(scenes[:validation_cut], scenes[validation_cut:test_cut], scenes[test_cut:])


def _jitter(rgb: tuple[int, int, int], rng: random.Random, amount: int) -> tuple[int, int, int]:
    r, g, b = (min(255, max(0, c + rng.randint(-amount, amount))) for c in rgb)
    return (r, g, b)


def _polygon(shape: str, cx: float, cy: float, r: float) -> list[tuple[float, float]]:
    if shape == "triangle":
        return [(cx + r * math.cos(a), cy + r * math.sin(a)) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    points = []  # a five-pointed star
    for i in range(10):
        angle = -math.pi / 2 + i * math.pi / 5
        radius = r if i % 2 == 0 else r * 0.45
        points.append((cx + radius * math.cos(angle), cy + radius * math.sin(angle)))
    return points


def draw(scene: Scene, seed: int, side: int = 128) -> Image.Image:
    """The scene as an RGB image ``side`` pixels square; ``seed`` picks the jitter."""
    rng = random.Random(seed)
    image = Image.new("RGB", (side, side), _jitter(BACKGROUNDS[scene.background], rng, 10))
    canvas = ImageDraw.Draw(image)
    fx, fy = POSITIONS[scene.position]
    cx = (fx + rng.uniform(-0.04, 0.04)) * side
    cy = (fy + rng.uniform(-0.04, 0.04)) * side
    r = SIZES[scene.size] * rng.uniform(0.85, 1.15) * side
    fill = _jitter(COLOURS[scene.colour], rng, 20)
    if scene.shape == "circle":
        canvas.ellipse((cx - r, cy - r, cx + r, cy + r), fill=fill)
    elif scene.shape == "square":
        half = r * 0.85
        canvas.rectangle((cx - half, cy - half, cx + half, cy + half), fill=fill)
    else:
        canvas.polygon(_polygon(scene.shape, cx, cy, r), fill=fill)
    return image


def encoded(image: Image.Image, fmt: str = "png", quality: int = 90) -> bytes:
    """The image as file bytes (``png`` or ``jpeg``)."""
    buffer = io.BytesIO()
    if fmt == "png":
        image.save(buffer, "PNG")
    else:
        image.save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def altered_copies(image: Image.Image) -> dict[str, bytes]:
    """What "the same picture" looks like after the web had it, as files: resized, re-encoded, cropped."""
    side = image.width
    margin = round(side * 0.06)
    return {
        "resized": encoded(image.resize((side * 3 // 4, side * 3 // 4), Image.Resampling.BICUBIC)),
        "reencoded": encoded(image, "jpeg", quality=40),
        "cropped": encoded(image.crop((margin, margin, side - margin, side - margin))),
    }
