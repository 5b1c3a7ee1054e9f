"""Request items to model inputs: path safety, size and pixel limits, one typed failure per bad item."""

from __future__ import annotations

import base64
from pathlib import Path

import open_clip
import pytest
import torch

from dyimages_common.embeddings.wire import ImageRef, ItemFailure
from dyimages_common.reasons import Reason
from embedding.items import ImageLimits, prepare_image
from testkit import TINY_MODEL, TINY_MODEL_CONFIG
from testkit.images import gif, jpeg, png, webp
from testkit.storage import store

pytestmark = pytest.mark.unit


@pytest.fixture(scope="module")
def preprocess():
    open_clip.add_model_config(TINY_MODEL_CONFIG)
    _, _, transform = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=None)
    return transform


def limits(images_dir: Path, max_bytes: int = 1_000_000, max_pixels: int = 1_000_000) -> ImageLimits:
    return ImageLimits(images_dir, max_bytes, max_pixels)


@pytest.mark.parametrize(("encode", "ext"), [(jpeg, "jpg"), (png, "png"), (webp, "webp"), (gif, "gif")])
def test_a_stored_image_becomes_a_pixel_tensor(images_dir: Path, preprocess, encode, ext: str) -> None:
    path = store(images_dir, encode(7), ext)
    pixels = prepare_image(ImageRef(path=path), limits(images_dir), preprocess)
    assert isinstance(pixels, torch.Tensor)
    assert pixels.shape == (3, 64, 64)


def test_uploaded_bytes_and_the_stored_file_give_the_same_pixels(images_dir: Path, preprocess) -> None:
    data = jpeg(8, (100, 70))
    by_path = prepare_image(ImageRef(path=store(images_dir, data)), limits(images_dir), preprocess)
    by_data = prepare_image(ImageRef(data=base64.b64encode(data).decode()), limits(images_dir), preprocess)
    assert torch.equal(by_path, by_data)


@pytest.mark.parametrize(
    "path",
    ["../outside.jpg", "/etc/passwd", "ab/cd/not-a-hash.jpg", "ab/cd/" + "ef" * 32 + ".jpg"],  # last: wrong prefix
)
def test_a_path_that_is_not_a_stored_image_is_refused(images_dir: Path, preprocess, path: str) -> None:
    error = prepare_image(ImageRef(path=path), limits(images_dir), preprocess)
    assert isinstance(error, ItemFailure)
    assert error.reason is Reason.UNSAFE_PATH


def test_a_symlink_out_of_the_images_dir_is_refused(tmp_path: Path, images_dir: Path, preprocess) -> None:
    outside = tmp_path / "secret.jpg"
    outside.write_bytes(jpeg(9))
    path = store(images_dir, jpeg(10))
    (images_dir / path).unlink()
    (images_dir / path).symlink_to(outside)
    error = prepare_image(ImageRef(path=path), limits(images_dir), preprocess)
    assert isinstance(error, ItemFailure)
    assert error.reason is Reason.UNSAFE_PATH


def test_a_missing_file_is_not_found(images_dir: Path, preprocess) -> None:
    error = prepare_image(ImageRef(path="ab/cd/abcd" + "0" * 60 + ".png"), limits(images_dir), preprocess)
    assert isinstance(error, ItemFailure)
    assert error.reason is Reason.NOT_FOUND


def test_limits_apply_to_files_and_uploads(images_dir: Path, preprocess) -> None:
    data = png(11, (200, 200))
    small_bytes = limits(images_dir, max_bytes=len(data) - 1)
    assert (
        prepare_image(ImageRef(path=store(images_dir, data, "png")), small_bytes, preprocess).reason is Reason.TOO_LARGE
    )
    upload = ImageRef(data=base64.b64encode(data).decode())
    assert prepare_image(upload, small_bytes, preprocess).reason is Reason.TOO_LARGE
    few_pixels = limits(images_dir, max_pixels=200 * 200 - 1)
    assert prepare_image(upload, few_pixels, preprocess).reason is Reason.TOO_MANY_PIXELS


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        ("not base64!", Reason.BAD_BASE64),
        (base64.b64encode(b"plain text, not an image").decode(), Reason.NOT_AN_IMAGE),
        (base64.b64encode(jpeg(12, (300, 200))[:-400]).decode(), Reason.CORRUPT_IMAGE),
    ],
)
def test_bad_uploads_say_why(images_dir: Path, preprocess, data: str, reason: Reason) -> None:
    error = prepare_image(ImageRef(data=data), limits(images_dir), preprocess)
    assert isinstance(error, ItemFailure)
    assert error.reason is reason
