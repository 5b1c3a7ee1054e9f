"""The service's vectors equal OpenCLIP's own reference pipeline, on real photographs and texts.

Weights: no trained weights can be downloaded here, so the test builds ViT-B-32 (the default
architecture) with seeded random weights, saves them as a checkpoint file, and starts the service
with ``MODEL_PRETRAINED=<that file>`` (OpenCLIP accepts a file path as ``pretrained``). Both sides
therefore run the very same weights, and the service's checkpoint loading is exercised too. The
reference is OpenCLIP's documented pipeline: ``create_model_and_transforms`` + ``preprocess(Image.open(f))``
+ ``encode_image``/``encode_text`` + L2 normalisation, one item at a time, in this process.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image
from skimage import data as photos

from dyimages_common.embedding_api import EmbeddingClient
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
MIN_COSINE = 0.9999


class Reference:
    def __init__(self, checkpoint: Path) -> None:
        torch.manual_seed(0)
        self.model, _, self.preprocess = open_clip.create_model_and_transforms(MODEL, pretrained=None)
        torch.save(self.model.state_dict(), checkpoint)
        self.model.eval()
        self.tokenizer = open_clip.get_tokenizer(MODEL)

    @torch.inference_mode()
    def image(self, file: Path) -> np.ndarray:
        features = self.model.encode_image(self.preprocess(Image.open(file)).unsqueeze(0))
        return (features / features.norm(dim=-1, keepdim=True))[0].numpy()

    @torch.inference_mode()
    def text(self, text: str) -> np.ndarray:
        features = self.model.encode_text(self.tokenizer([text]))
        return (features / features.norm(dim=-1, keepdim=True))[0].numpy()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Reference, EmbeddingClient, list[str], Path]]:
    root = tmp_path_factory.mktemp("parity")
    images_dir = root / "images"
    images_dir.mkdir()
    checkpoint = root / "vit-b-32-random.pt"
    reference = Reference(checkpoint)
    paths = []
    for index, name in enumerate(PHOTOS):
        buffer = io.BytesIO()
        fmt, ext = ("PNG", "png") if index % 3 == 2 else ("JPEG", "jpg")
        Image.fromarray(getattr(photos, name)()).save(buffer, format=fmt, quality=92)
        paths.append(store(images_dir, buffer.getvalue(), ext))
    with (
        run_embedding_service(
            images_dir, root, MODEL_NAME=MODEL, MODEL_PRETRAINED=str(root / "vit-b-32-random.pt")
        ) as service,
        EmbeddingClient(service.url, timeout=300) as client,
    ):
        yield reference, client, paths, images_dir


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def test_info_names_the_checkpoint(setup: tuple) -> None:
    _, client, _, _ = setup
    info = client.info()
    assert (info.model, info.dim, info.context_length) == (MODEL, 512, 77)
    assert info.pretrained.endswith("vit-b-32-random.pt")


def test_image_vectors_equal_the_reference(setup: tuple) -> None:
    reference, client, paths, images_dir = setup
    result = client.embed_image_paths(paths)  # one request, one batch: batching must not change vectors
    assert result.errors == [None] * len(paths)
    service = np.stack(result.vectors)
    expected = np.stack([reference.image(images_dir / path) for path in paths])
    cosines = _cosines(service, expected)
    assert cosines.min() >= MIN_COSINE, cosines
    # Distinct photos give distinct vectors (a constant output would pass the check above trivially).
    assert _cosines(expected[0], expected[1]) < 0.999


def test_uploaded_bytes_equal_the_reference(setup: tuple) -> None:
    reference, client, paths, images_dir = setup
    data = (images_dir / paths[1]).read_bytes()
    vector = client.embed_image_bytes(data)  # sent as base64 `data`
    assert _cosines(vector, reference.image(images_dir / paths[1])) >= MIN_COSINE


def test_text_vectors_equal_the_reference(setup: tuple) -> None:
    reference, client, _, _ = setup
    service = client.embed_texts(TEXTS)
    expected = np.stack([reference.text(text) for text in TEXTS])
    cosines = _cosines(service, expected)
    assert cosines.min() >= MIN_COSINE, cosines
    assert _cosines(expected[0], expected[1]) < 0.999
