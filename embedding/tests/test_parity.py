"""The service's vectors equal OpenCLIP's own reference pipeline, on real photographs and texts.

Weights: no trained weights can be downloaded here, so the test builds ViT-B-32 (the default
architecture) with seeded random weights, saves them as a checkpoint file, and starts the service
with ``MODEL_PRETRAINED=<that file>`` (OpenCLIP accepts a file path as ``pretrained``). Both sides
therefore run the very same weights, and the service's checkpoint loading is exercised too. The
reference is OpenCLIP's documented pipeline: ``create_model_and_transforms`` + ``preprocess(image)``
+ ``encode_image``/``encode_text`` + L2 normalisation, one item at a time, in this process; the image
is decoded as the service decodes it (:func:`decoded`: Pillow's draft and exif_transpose). One photo
is a phone photo stored sideways (EXIF Orientation 6) and large enough to be decoded at reduced scale.

Vectors are compared element by element at fp32 tolerance (:data:`ATOL`), not by cosine: with
random weights a wrong resize filter still scores cosine 0.99996. The negative controls run the
reference with one step of its preprocessing wrong (bilinear for bicubic resizing, ImageNet's
mean and std for OpenAI's, another crop) or decoded unlike the service (not turned upright, not
reduced) and show the same comparison fails for each, so a service with that fault could not pass.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from open_clip.constants import IMAGENET_MEAN, IMAGENET_STD
from PIL import Image, ImageOps
from skimage import data as photos
from torchvision import transforms

from dyimages_common.embeddings.client import EmbeddingClient
from dyimages_common.images.decode import REDUCING_GAP
from testkit.embedding import run_embedding_service
from testkit.storage import store

pytestmark = pytest.mark.integration

MODEL = "ViT-B-32"
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field")
TEXTS = [
    "a photo of an astronaut",
    "a cat sitting on a chair",
    "A cup of coffee on a saucer!",
    "a rocket on the launch pad at night",
    " ".join(["a very long caption that goes on"] * 30),  # longer than the context: truncated
]
# fp32 agreement: a correct service differs from the reference by float rounding only (batched
# matrix products, another runtime's kernels). Measured here: at most 2.2e-7 (images) and 1.8e-7
# (texts) per element of a 512-d unit vector; a wrong preprocessing step moves elements by 1e-4 and more.
ATOL = 2e-6


def assert_same_vectors(got: np.ndarray, expected: np.ndarray) -> None:
    np.testing.assert_allclose(got, expected, rtol=0, atol=ATOL)


def _orientation(value: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = value
    return exif.tobytes()


def decoded(file: Path, *, reduced: bool = True, turned: bool = True, side: int = 224) -> Image.Image:
    """The photo as the service decodes it, with Pillow's own calls: a JPEG at the smallest DCT scale
    whose sides stay at least REDUCING_GAP times the model's (``draft``), then turned by its EXIF
    Orientation (``exif_transpose``). ``reduced=False`` or ``turned=False`` leave one step out
    (negative controls)."""
    image = Image.open(file)
    if reduced and image.format == "JPEG":
        target = math.ceil(REDUCING_GAP * side)
        image.draft("RGB", (target, target))
    return ImageOps.exif_transpose(image) if turned else image


# A decode unlike the service's, and the photos it changes: the sideways rocket is the only one
# turned; the JPEGs at least 2 x REDUCING_GAP times the model's side on both sides (the astronaut and
# the rocket, enlarged for it) are the ones decoded at reduced scale.
WRONG_DECODES = {
    "not turned upright": ({"turned": False}, {"rocket"}),
    "decoded at full size": ({"reduced": False}, {"astronaut", "rocket"}),
}
ENLARGED = {"astronaut": 3, "rocket": 4}  # 1536 x 1536 and 1708 x 2560: both decoded at 1/4


class Reference:
    def __init__(self, checkpoint: Path) -> None:
        torch.manual_seed(0)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
        torch.save(self.model.state_dict(), checkpoint)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(MODEL)

    @torch.inference_mode()
    def image(self, file: Path, preprocess: transforms.Compose | None = None, **decode: bool) -> np.ndarray:
        pixels = (preprocess or self.preprocess)(decoded(file, **decode)).unsqueeze(0)
        features = self.model.encode_image(pixels)
        return (features / features.norm(dim=-1, keepdim=True))[0].numpy()

    def wrong(self, step: str) -> transforms.Compose:
        """OpenCLIP's eval transform with one step wrong, as a buggy service might have it."""
        steps = list(self.preprocess.transforms)
        resize, crop, normalize = steps[0], steps[1], steps[-1]
        assert isinstance(resize, transforms.Resize)
        assert isinstance(crop, transforms.CenterCrop)
        assert isinstance(normalize, transforms.Normalize)
        size = crop.size[0]
        if step == "bilinear resize":
            steps[0] = transforms.Resize(resize.size, transforms.InterpolationMode.BILINEAR, antialias=True)
        elif step == "ImageNet normalisation":
            steps[-1] = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
        elif step == "squashed, not cropped":
            steps[0], steps[1] = transforms.Resize((size, size), resize.interpolation, antialias=True), crop
        elif step == "corner crop":
            steps[1] = transforms.Lambda(lambda image: image.crop((0, 0, size, size)))
        else:
            raise ValueError(step)
        return transforms.Compose(steps)

    @torch.inference_mode()
    def text(self, text: str) -> np.ndarray:
        features = self.model.encode_text(self.tokenizer([text]))
        return (features / features.norm(dim=-1, keepdim=True))[0].numpy()


@dataclass
class Setup:
    """The reference, a client of the service, the stored photos and the reference's vectors of them."""

    reference: Reference
    client: EmbeddingClient
    paths: list[str]  # relative to images_dir, as requests name them
    images_dir: Path
    expected: np.ndarray  # the reference's vector of each photo, in order

    @property
    def files(self) -> list[Path]:
        return [self.images_dir / path for path in self.paths]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    root = tmp_path_factory.mktemp("parity")
    images_dir = root / "images"
    images_dir.mkdir()
    checkpoint = root / "vit-b-32-random.pt"
    reference = Reference(checkpoint)
    paths = []
    for index, name in enumerate(PHOTOS):
        buffer = io.BytesIO()
        fmt, ext = ("PNG", "png") if index % 3 == 2 else ("JPEG", "jpg")
        image = Image.fromarray(getattr(photos, name)())
        if factor := ENLARGED.get(name):
            image = image.resize((image.width * factor, image.height * factor), Image.Resampling.BICUBIC)
        sideways = {"exif": _orientation(6)} if name == "rocket" else {}  # a phone photo stored on its side
        image.save(buffer, format=fmt, quality=92, **sideways)
        paths.append(store(images_dir, buffer.getvalue(), ext))
    # The reference vectors, once: every test compares with them.
    expected = np.stack([reference.image(images_dir / path) for path in paths])
    with (
        run_embedding_service(
            images_dir, root, MODEL_NAME=MODEL, MODEL_PRETRAINED=str(root / "vit-b-32-random.pt")
        ) as service,
        EmbeddingClient(service.url, timeout=300) as client,
    ):
        yield Setup(reference, client, paths, images_dir, expected)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_info_names_the_checkpoint(setup: Setup) -> None:
    info = setup.client.info()
    assert (info.model, info.dim, info.context_length) == (MODEL, 512, 77)
    assert info.pretrained.endswith("vit-b-32-random.pt")


def test_image_vectors_equal_the_reference(setup: Setup) -> None:
    result = setup.client.embed_image_paths(setup.paths)  # one request, one batch: batching must not change vectors
    assert result.errors == [None] * len(setup.paths)
    service = np.stack(result.vectors)
    print(f"images: largest element difference {np.abs(service - setup.expected).max():.2e} (tolerance {ATOL:.0e})")
    assert_same_vectors(service, setup.expected)
    # Distinct photos give distinct vectors (a constant output would pass the check above trivially).
    assert _cosines(setup.expected[0], setup.expected[1]) < 0.999


@pytest.mark.parametrize("step", ["bilinear resize", "ImageNet normalisation", "squashed, not cropped", "corner crop"])
def test_the_comparison_catches_a_wrong_preprocessing_step(setup: Setup, step: str) -> None:
    """Negative control: vectors of a pipeline with this one step wrong fail the comparison above."""
    wrong = np.stack([setup.reference.image(file, setup.reference.wrong(step)) for file in setup.files])
    with pytest.raises(AssertionError):
        assert_same_vectors(wrong, setup.expected)
    assert np.abs(wrong - setup.expected).max() > 10 * ATOL  # caught with a wide margin, not by rounding


@pytest.mark.parametrize("fault", list(WRONG_DECODES))
def test_the_comparison_catches_a_decode_unlike_the_services(setup: Setup, fault: str) -> None:
    """Negative control: decoded without one of the service's steps, exactly the photos that step
    changes get vectors that fail the comparison, by a wide margin; the others stay equal."""
    decode, changed = WRONG_DECODES[fault]
    wrong = np.stack([setup.reference.image(file, **decode) for file in setup.files])
    differs = np.abs(wrong - setup.expected).max(axis=1) > 10 * ATOL
    assert {name for name, moved in zip(PHOTOS, differs, strict=True) if moved} == changed
    assert_same_vectors(wrong[~differs], setup.expected[~differs])


def test_uploaded_bytes_equal_the_reference(setup: Setup) -> None:
    for index in (1, PHOTOS.index("rocket")):  # sent as base64 `data`: decoded as a stored file is
        vector = setup.client.embed_image_bytes(setup.files[index].read_bytes())
        assert_same_vectors(vector, setup.expected[index])


def test_text_vectors_equal_the_reference(setup: Setup) -> None:
    service = setup.client.embed_texts(TEXTS)
    expected = np.stack([setup.reference.text(text) for text in TEXTS])
    print(f"texts: largest element difference {np.abs(service - expected).max():.2e} (tolerance {ATOL:.0e})")
    assert_same_vectors(service, expected)
    assert _cosines(expected[0], expected[1]) < 0.999
