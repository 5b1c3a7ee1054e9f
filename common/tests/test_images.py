import pytest

from dyimages_common.images.checks import ImageRejected, inspect_image
from dyimages_common.images.decode import open_image
from testkit.images import gif, jpeg, png, webp

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 1_000_000, "max_pixels": 1_000_000}


@pytest.mark.parametrize(
    ("data", "fmt", "ext", "mime"),
    [
        (jpeg(1), "JPEG", "jpg", "image/jpeg"),
        (png(2), "PNG", "png", "image/png"),
        (webp(3), "WEBP", "webp", "image/webp"),
        (gif(4), "GIF", "gif", "image/gif"),
    ],
)
def test_accepted_formats(data: bytes, fmt: str, ext: str, mime: str) -> None:
    info = inspect_image(data, **LIMITS)
    assert (info.format, info.extension, info.content_type, info.width, info.height) == (fmt, ext, mime, 64, 48)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"<html><body>not an image</body></html>", "not_an_image"),
        (b"", "not_an_image"),
        (jpeg(5, size=(256, 256))[:-600], "corrupt_image"),
        (png(6)[:-40], "corrupt_image"),
        (jpeg(7, size=(1100, 1000), quality=10), "too_many_pixels"),
        (b"\xff" * 2_000_000, "too_large"),
    ],
)
def test_refused_with_a_reason(data: bytes, reason: str) -> None:
    with pytest.raises(ImageRejected) as info:
        inspect_image(data, **LIMITS)
    assert info.value.reason == reason


def test_decompression_bomb_is_refused_before_decoding() -> None:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (20_000, 20_000)).save(buffer, "PNG", optimize=True)
    bomb = buffer.getvalue()
    assert len(bomb) < 1_000_000  # small on disk, 400 megapixels decoded
    with pytest.raises(ImageRejected) as info:
        inspect_image(bomb, **LIMITS)
    assert info.value.reason == "too_many_pixels"


def test_open_image_gives_rgb() -> None:
    assert open_image(png(8), **LIMITS).mode == "RGB"
