"""Distinct, deterministic test images in every accepted format."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image


def make_image(seed: int, size: tuple[int, int] = (64, 48)) -> Image.Image:
    """A colourful image that differs for every seed (gradient plus seeded noise)."""
    rng = np.random.default_rng(seed)
    width, height = size
    x = np.linspace(0, 1, width)[None, :, None]
    y = np.linspace(0, 1, height)[:, None, None]
    base = rng.uniform(0, 255, size=(1, 1, 3))
    slope = rng.uniform(-200, 200, size=(1, 1, 3))
    pixels = base + slope * x + slope[..., ::-1] * y + rng.normal(0, 25, size=(height, width, 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def encode(image: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **params)
    return buffer.getvalue()


def jpeg(seed: int, size: tuple[int, int] = (64, 48), quality: int = 90) -> bytes:
    return encode(make_image(seed, size), "JPEG", quality=quality)


def png(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(make_image(seed, size), "PNG")


def webp(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(make_image(seed, size), "WEBP")


def gif(seed: int, size: tuple[int, int] = (64, 48)) -> bytes:
    return encode(make_image(seed, size).convert("P"), "GIF")
