"""A baseline that knows colours and nothing else: what the demo model's recall has to beat.

It is not the model, nor anything learnt: it reads the two colour words of a caption and counts
pixels. Text -> image: a picture scores the share of its pixels near the shape colour the caption
names plus the share near the background colour it names; size, position and shape are ignored, so
pictures that differ from the target only in those tie on colour and are told apart by chance (the
jitter). Image -> image: colour histograms (4 levels per channel) compared by intersection, which
survives resizing, cropping and JPEG re-encoding well. ``bench quality`` ranks the same pictures
with it beside the model.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from testkit.demo_world import BACKGROUNDS, COLOURS

SHAPE_COLOUR_DISTANCE = 80.0  # RGB distance still counted as the named colour (jitter and JPEG)
BACKGROUND_DISTANCE = 40.0
LEVELS = 4


def pixels(data: bytes) -> np.ndarray:
    """The picture's pixels as float RGB, (H*W, 3)."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float32).reshape(-1, 3)


def caption_colours(caption: str) -> tuple[str | None, str | None]:
    """(shape colour, background colour) named in a caption, None for one it does not name."""
    words = caption.lower().replace(",", " ").split()
    shape = next((word for word in words if word in COLOURS), None)
    background = next(
        (words[i - 1] for i, word in enumerate(words) if word == "background" and words[i - 1] in BACKGROUNDS), None
    )
    return shape, background


def _share_near(rgb: np.ndarray, colour: tuple[int, int, int], distance: float) -> float:
    return float(np.mean(np.linalg.norm(rgb - np.asarray(colour, dtype=np.float32), axis=1) < distance))


def text_scores(caption: str, pictures: list[np.ndarray]) -> np.ndarray:
    """One score per picture for a caption: higher is a better match."""
    shape, background = caption_colours(caption)
    scores = np.zeros(len(pictures))
    for index, rgb in enumerate(pictures):
        if shape is not None:
            scores[index] += _share_near(rgb, COLOURS[shape], SHAPE_COLOUR_DISTANCE)
        if background is not None:
            scores[index] += _share_near(rgb, BACKGROUNDS[background], BACKGROUND_DISTANCE)
    return scores


def histogram(rgb: np.ndarray) -> np.ndarray:
    """The share of pixels in each of LEVELS**3 colour bins."""
    bins = np.minimum((rgb * LEVELS / 256).astype(np.int64), LEVELS - 1)
    codes = bins[:, 0] * LEVELS * LEVELS + bins[:, 1] * LEVELS + bins[:, 2]
    return np.bincount(codes, minlength=LEVELS**3) / len(codes)


def image_scores(query: np.ndarray, pictures: list[np.ndarray]) -> np.ndarray:
    """Histogram intersection of the query picture with each picture."""
    wanted = histogram(query)
    return np.asarray([np.minimum(wanted, histogram(rgb)).sum() for rgb in pictures])
