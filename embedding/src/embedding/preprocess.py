"""OpenCLIP's eval preprocessing without PyTorch: Pillow for the resize and crop, NumPy for the rest.

OpenCLIP's ``preprocess`` is torchvision's ``Resize`` (shortest side to the model's size, Pillow's
bicubic or bilinear filter), ``CenterCrop``, ``convert("RGB")``, ``ToTensor`` (/255 in float32) and
``Normalize`` (minus mean, divided by std, in float32). On a Pillow image torchvision calls Pillow
itself, so doing the same Pillow calls in the same order, with the same size arithmetic, gives the
same pixels; the float steps are the same IEEE float32 operations. ``embedding/tests/test_onnx_parity.py``
compares the two element by element on photos of every format and odd sizes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from PIL import Image

_FILTERS = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}
RESIZE_MODES = ("shortest", "squash")


class UnsupportedPreprocessing(ValueError):
    """The model's preprocessing has a step this port does not reproduce (use EMBEDDING_RUNTIME=torch)."""


@dataclass(frozen=True)
class ImagePreprocess:
    """The settings of one model's eval transform (saved as ``preprocess.json`` in the ONNX bundle)."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"

    def __post_init__(self) -> None:
        if self.interpolation not in _FILTERS:
            raise UnsupportedPreprocessing(f"interpolation {self.interpolation!r} (supported: bicubic, bilinear)")
        if self.resize_mode not in RESIZE_MODES:
            raise UnsupportedPreprocessing(f"resize_mode {self.resize_mode!r} (supported: {', '.join(RESIZE_MODES)})")

    @classmethod
    def from_dict(cls, data: dict) -> ImagePreprocess:
        return cls(
            size=int(data["size"]),
            mean=tuple(float(v) for v in data["mean"]),  # type: ignore[arg-type]
            std=tuple(float(v) for v in data["std"]),  # type: ignore[arg-type]
            interpolation=str(data["interpolation"]),
            resize_mode=str(data["resize_mode"]),
        )

    def to_dict(self) -> dict:
        return asdict(self)

    def resized(self, image: Image.Image) -> Image.Image:
        """torchvision ``Resize(size)`` (shortest side) or ``Resize((size, size))`` (squash) on a Pillow image."""
        width, height = image.size
        if self.resize_mode == "squash":
            new_w = new_h = self.size
        else:
            short, long = (width, height) if width <= height else (height, width)
            new_short, new_long = self.size, int(self.size * long / short)
            new_w, new_h = (new_short, new_long) if width <= height else (new_long, new_short)
        if (new_w, new_h) == (width, height):
            return image
        return image.resize((new_w, new_h), _FILTERS[self.interpolation])

    def cropped(self, image: Image.Image) -> Image.Image:
        """torchvision ``CenterCrop(size)`` with its offset rounding (a shortest-side resize never needs padding)."""
        width, height = image.size
        if (width, height) == (self.size, self.size):
            return image
        top = round((height - self.size) / 2.0)
        left = round((width - self.size) / 2.0)
        return image.crop((left, top, left + self.size, top + self.size))

    def __call__(self, image: Image.Image) -> np.ndarray:
        """One Pillow image (any mode) -> float32 pixels (3, size, size), normalised."""
        rgb = self.cropped(self.resized(image)).convert("RGB")
        pixels = np.asarray(rgb, dtype=np.uint8).astype(np.float32) / np.float32(255)
        pixels = (pixels - np.asarray(self.mean, dtype=np.float32)) / np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(pixels.transpose(2, 0, 1))


def input_side(preprocess: Callable[[Image.Image], Any]) -> int | None:
    """The side in pixels a backend's preprocessing resizes images to (the larger one if not square):
    :class:`ImagePreprocess` says it; OpenCLIP's torchvision transform says it in its ``CenterCrop`` or
    ``Resize``. None when neither is found (the image is then decoded at full size)."""
    if isinstance(preprocess, ImagePreprocess):
        return preprocess.size
    for step in getattr(preprocess, "transforms", ()):
        if type(step).__name__ in ("CenterCrop", "Resize"):
            size = step.size
            return int(size) if isinstance(size, int) else int(max(size))
    return None
