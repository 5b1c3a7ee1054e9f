"""The ONNX runtime equals OpenCLIP exactly: token ids, preprocessed pixels, and vectors within 1e-5.

The references are OpenCLIP's own objects in this process: ``get_tokenizer``, the ``preprocess``
of ``create_model_and_transforms``, and the torch backend (``embedding.model.LoadedModel``) on
the same checkpoint. Ids and pixels must be EQUAL (not close); vectors within 1e-5 max abs diff.
Both runtimes get their images from the same decode (``open_image``: upright, a JPEG at the smallest
DCT scale covering the model's side), and read that side from their own transform alike
(``input_side``), so the photos are also compared as the service decodes them, a sideways phone
JPEG among them.
Negative controls show each comparison catches a plausible mistake (wrong mean, wrong resize
filter, wrong crop rounding, no text cleaning).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import open_clip
import pytest
import torch
from open_clip.tokenizer import default_bpe
from PIL import Image
from skimage import data as photos

from dyimages_common.images.decode import open_image
from embedding.onnx_export import _preprocess_settings, ensure_bundle
from embedding.onnx_runtime import OnnxModel
from embedding.preprocess import ImagePreprocess, input_side
from embedding.runtime import Runtime, load_backend
from embedding.settings import EmbeddingSettings
from embedding.tokenizer import ClipTokenizer
from testkit import TINY_MODEL, TINY_MODEL_CONFIG
from testkit.images import encode, make_image

pytestmark = pytest.mark.unit

TOLERANCE = 1e-5
CORPUS = [
    "",
    " ",
    "a photo of a cat",
    "A RED Bicycle, leaning on a wall!!",
    "it's what they'll've done, isn't it?",
    "Café crème brûlée, naïve façade, Ångström, Straße",
    "東京の夜景 🌃 と 富士山 🗻",
    "emoji only: 😀😃😄😁 👩‍👩‍👧‍👦 🏳️‍🌈 🇫🇷",
    "Привет мир, γειά σου κόσμε, مرحبا بالعالم, שלום",
    "numbers 1234567890 and 3.14159 and 1e-5",
    "html &amp; entities &lt;b&gt; &quot;quoted&quot; &#39;single&#39;",
    "mojibake: cafÃ© and donâ€™t",
    "  tabs\tand\nnewlines\r\n   and   spaces  ",
    "<start_of_text> inside <end_of_text> the text",
    "under_score snake_case kebab-case CamelCase",
    "zero\u200bwidth and \u00a0nbsp and \ufeffbom",
    " ".join(["a very long caption that goes on and on"] * 20),  # truncated at the context length
    "supercalifragilisticexpialidocious " * 30,
    "x" * 500,
]
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "immunohistochemistry")
FORMATS = {"JPEG": {"quality": 90}, "PNG": {}, "WEBP": {"quality": 90}, "GIF": {}}
ODD_SIZES = [(1, 300), (300, 1), (1, 1), (7, 5), (2000, 30), (31, 1024), (224, 224), (225, 223), (64, 64), (63, 65)]


# -- tokenizer -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def openclip_tokenizer() -> open_clip.tokenizer.SimpleTokenizer:
    return open_clip.get_tokenizer("ViT-B-32")


@pytest.fixture(scope="module")
def ours() -> ClipTokenizer:
    return ClipTokenizer(Path(default_bpe()), context_length=77)


def test_token_ids_equal_openclips_on_the_corpus(openclip_tokenizer, ours: ClipTokenizer) -> None:
    expected = openclip_tokenizer(CORPUS).numpy()
    got = ours(CORPUS)
    assert got.dtype == np.int64
    assert got.shape == expected.shape == (len(CORPUS), 77)
    for text, row, want in zip(CORPUS, got, expected, strict=True):
        assert np.array_equal(row, want), text
    # The corpus really exercises truncation: long texts fill the context and end with <end_of_text>.
    assert (got[:, -1] == ours.end_id).sum() >= 3
    # ... and text cleaning: the HTML entities and the mojibake come out fixed.
    assert np.array_equal(ours(["&amp;"]), ours(["&"]))
    assert np.array_equal(ours(["cafÃ©"]), ours(["café"]))


def test_token_ids_at_a_shorter_context_length(openclip_tokenizer) -> None:
    ours16 = ClipTokenizer(Path(default_bpe()), context_length=16)
    assert np.array_equal(ours16(CORPUS), openclip_tokenizer(CORPUS, context_length=16).numpy())


def test_negative_control_a_tokenizer_without_lower_casing_is_caught(openclip_tokenizer) -> None:
    wrong = ClipTokenizer(Path(default_bpe()), context_length=77, clean="whitespace")
    assert not np.array_equal(wrong(CORPUS), openclip_tokenizer(CORPUS).numpy())


# -- preprocessing -------------------------------------------------------------------------------


def _openclip_preprocess(name: str) -> tuple:
    if name == TINY_MODEL:
        open_clip.add_model_config(TINY_MODEL_CONFIG)
    model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=None)
    return preprocess, _preprocess_settings(open_clip.get_model_preprocess_cfg(model))


@pytest.fixture(scope="module", params=["ViT-B-32", TINY_MODEL])
def preprocessors(request: pytest.FixtureRequest) -> tuple:
    return _openclip_preprocess(request.param)


def _photo_files() -> Iterator[tuple[str, bytes]]:
    for name in PHOTOS:
        image = Image.fromarray(getattr(photos, name)())
        for fmt, params in FORMATS.items():
            yield f"{name}.{fmt.lower()}", encode(image.convert("P") if fmt == "GIF" else image, fmt, **params)
    for index, size in enumerate(ODD_SIZES):
        yield f"odd-{size[0]}x{size[1]}.png", encode(make_image(index, size), "PNG")
        yield f"odd-{size[0]}x{size[1]}.jpg", encode(make_image(index, size), "JPEG", quality=85)
    rgba = make_image(99, (300, 200)).convert("RGBA")
    rgba.putalpha(Image.linear_gradient("L").resize((300, 200)))
    yield "alpha.png", encode(rgba, "PNG")
    yield "alpha.webp", encode(rgba, "WEBP", lossless=True)
    yield "grey.jpg", encode(make_image(5, (333, 250)).convert("L"), "JPEG")
    yield "phone-sideways.jpg", phone_photo()


def phone_photo() -> bytes:
    """A phone photo stored on its side (EXIF Orientation 6), 1708 x 2560: decoded at 1/2 or less."""
    image = Image.fromarray(photos.rocket())
    image = image.resize((image.width * 4, image.height * 4), Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6
    return encode(image, "JPEG", quality=90, exif=exif.tobytes())


PHOTO_FILES = dict(_photo_files())


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


@pytest.mark.parametrize("name", list(PHOTO_FILES))
def test_pixels_equal_openclips_preprocess(preprocessors: tuple, name: str) -> None:
    reference, ours = preprocessors
    data = PHOTO_FILES[name]
    as_opened = Image.open(io.BytesIO(data))  # the reference pipeline's input, any mode
    as_served = open_image(data, max_bytes=1 << 30, max_pixels=1 << 30)  # the service's input, RGB
    reduced = open_image(data, max_bytes=1 << 30, max_pixels=1 << 30, min_side=input_side(ours))  # its default
    for image in (as_opened, as_served, reduced):
        assert _same(ours(image), reference(image).numpy()), (name, image.mode)


def test_both_runtimes_decode_for_the_same_side(preprocessors: tuple) -> None:
    """The side the service decodes a JPEG for comes from the runtime's transform: the same in both."""
    reference, ours = preprocessors
    assert input_side(ours) == input_side(reference) == ours.size


@pytest.fixture(scope="module")
def vit_preprocessors() -> tuple:
    return _openclip_preprocess("ViT-B-32")


WRONG = {
    "ImageNet mean and std": lambda p: dataclasses.replace(p, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)),
    "bilinear resize": lambda p: dataclasses.replace(p, interpolation="bilinear"),
    "squashed, not cropped": lambda p: dataclasses.replace(p, resize_mode="squash"),
    "crop offset floored": lambda p: _FlooredCrop(**dataclasses.asdict(p)),
}


class _FlooredCrop(ImagePreprocess):
    """A plausible mistake: the crop offset floored instead of rounded (torchvision rounds)."""

    def cropped(self, image: Image.Image) -> Image.Image:
        left, top = (image.width - self.size) // 2, (image.height - self.size) // 2
        return image.crop((left, top, left + self.size, top + self.size))


@pytest.mark.parametrize("mistake", list(WRONG))
def test_negative_controls_a_wrong_preprocessing_is_caught(vit_preprocessors: tuple, mistake: str) -> None:
    reference, ours = vit_preprocessors
    wrong = WRONG[mistake](ours)
    caught = [
        name
        for name, data in PHOTO_FILES.items()
        if not _same(wrong(img := Image.open(io.BytesIO(data))), reference(img).numpy())
    ]
    assert len(caught) >= 3, f"{mistake} passed on nearly every image"


# -- vectors -------------------------------------------------------------------------------------


def _checkpoint(name: str, folder: Path) -> Path:
    torch.manual_seed(0)
    model = open_clip.create_model(name, pretrained=None)
    path = folder / f"{name}-seeded.pt"
    torch.save(model.state_dict(), path)
    return path


def _settings(name: str, checkpoint: Path, cache: Path, runtime: str) -> EmbeddingSettings:
    return EmbeddingSettings(
        model_name=name,
        model_pretrained=str(checkpoint),
        model_config_file=TINY_MODEL_CONFIG,
        model_cache_dir=cache,
        images_dir=cache,
        device="cpu",
        embedding_runtime=runtime,
    )


def _backends(name: str, folder: Path) -> tuple:
    open_clip.add_model_config(TINY_MODEL_CONFIG)
    checkpoint = _checkpoint(name, folder)
    onnx_settings = _settings(name, checkpoint, folder, "onnx")
    onnx = OnnxModel(ensure_bundle(onnx_settings), "cpu", threads=2)
    reference = load_backend(_settings(name, checkpoint, folder, "torch"), Runtime("torch", "cpu"), "cpu", 2)
    return onnx, reference


def _compare_vectors(onnx: OnnxModel, reference, images: list[Image.Image]) -> tuple[float, float, np.ndarray]:
    got_images = onnx.embed_images([onnx.preprocess(image) for image in images])
    want_images = reference.embed_images([reference.preprocess(image) for image in images])
    want_texts = reference.embed_texts(reference.tokenize(CORPUS))
    # The whole corpus in one batch (cut at its longest text: 77), and each text alone (cut after
    # its own <end_of_text>: 2 ids for "", a dozen for a query), as a search sends it.
    got_texts = [onnx.embed_texts(onnx.tokenize(CORPUS))] + [onnx.embed_texts(onnx.tokenize([t])) for t in CORPUS]
    text_diff = max(float(np.abs(got - want_texts).max()) for got in [got_texts[0], np.concatenate(got_texts[1:])])
    return float(np.abs(got_images - want_images).max()), text_diff, want_images


def _sample_images(side: int) -> list[Image.Image]:
    """Photos of every format, decoded as the service decodes them for a model of input ``side``."""
    names = ["astronaut.jpeg", "chelsea.png", "coffee.webp", "rocket.gif", "odd-7x5.png", "alpha.png", "grey.jpg"]
    names.append("phone-sideways.jpg")
    return [open_image(PHOTO_FILES[name], max_bytes=1 << 30, max_pixels=1 << 30, min_side=side) for name in names]


def test_tiny_model_vectors_equal_the_torch_backend(tmp_path: Path) -> None:
    onnx, reference = _backends(TINY_MODEL, tmp_path)
    assert input_side(onnx.preprocess) == input_side(reference.preprocess) == 64  # the services decode alike
    images = _sample_images(input_side(onnx.preprocess))
    image_diff, text_diff, vectors = _compare_vectors(onnx, reference, images)
    assert image_diff <= TOLERANCE, image_diff
    assert text_diff <= TOLERANCE, text_diff
    assert float(np.abs(vectors[0] - vectors[1]).max()) > 1e-3  # distinct images, distinct vectors
    # Negative control: the tolerance is tight enough to catch a wrong mean in the vectors too.
    wrong = dataclasses.replace(onnx.preprocess, mean=(0.485, 0.456, 0.406))
    wrong_vectors = onnx.embed_images([wrong(image) for image in images])
    assert float(np.abs(wrong_vectors - vectors).max()) > 100 * TOLERANCE
    # The text tower takes trimmed ids, and cutting one id too many (the <end_of_text>) is caught.
    assert onnx.meta.trim_tokens
    tokens = onnx.tokenizer(["a photo of a cat"])
    end = int(tokens.argmax(axis=1)[0])
    right = onnx.text_session.run(None, {"tokens": tokens[:, : end + 1]})[0]
    too_short = onnx.text_session.run(None, {"tokens": tokens[:, :end]})[0]
    assert float(np.abs(right - reference.embed_texts(reference.tokenize(["a photo of a cat"]))).max()) <= TOLERANCE
    assert float(np.abs(too_short - right).max()) > 100 * TOLERANCE


@pytest.mark.integration  # ViT-B-32: a 600 MB checkpoint and a minute of export on a small CPU
def test_vit_b_32_vectors_equal_the_torch_backend(tmp_path: Path) -> None:
    onnx, reference = _backends("ViT-B-32", tmp_path)
    image_diff, text_diff, _ = _compare_vectors(onnx, reference, _sample_images(input_side(onnx.preprocess)))
    assert image_diff <= TOLERANCE, image_diff
    assert text_diff <= TOLERANCE, text_diff
