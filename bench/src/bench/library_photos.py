"""Generated photo libraries for ``python -m bench library``: real-size camera photos, and small images.

A camera photo is :func:`bench.decode_cosine.camera_photo`: a natural photograph upscaled to 4032x3024
(12 MP) with sensor-like noise, a JPEG at quality 90 with a camera's EXIF, every third stored sideways
(pixels turned, Orientation 6). A few are HEIC (the same pixels through pillow-heif's x265 encoder, slow:
they are few), and some are byte-for-byte copies under another name, in another folder. The small
library is the same at 640x480.

Making them takes minutes on a busy machine, so a library is kept in the cache folder
(``~/.cache/dyimages/bench-library/``) by its parameters and reused by the next run.
"""

from __future__ import annotations

import io
import shutil
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from bench.decode_cosine import camera_photo
from dyimages_common.images.heif import register_heif

CACHE = Path.home() / ".cache" / "dyimages" / "bench-library"
VERSION = 2  # bump when the photos change, so a cached library is made again
PHOTO_SIZE = (4032, 3024)
SMALL_SIZE = (640, 480)


@dataclass(frozen=True)
class LibrarySpec:
    photos: int  # distinct photos
    size: tuple[int, int]
    heic: int  # of them HEIC
    copies: int  # extra byte-for-byte copies under other names

    @property
    def key(self) -> str:
        width, height = self.size
        return f"v{VERSION}-{self.photos}-{width}x{height}-{self.heic}h-{self.copies}c"


def _as_heic(jpeg: bytes) -> bytes:
    """The same photo as a phone's HEIC: pixels and EXIF kept."""
    register_heif()
    with Image.open(io.BytesIO(jpeg)) as image:
        buffer = io.BytesIO()
        image.save(buffer, format="HEIF", quality=80, exif=image.info.get("exif", b""))
    return buffer.getvalue()


def make_library(spec: LibrarySpec) -> Path:
    """The folder for ``spec``, from the cache or made now (``2024/<month>/IMG_nnnn.ext``, copies in ``copies/``)."""
    folder = CACHE / spec.key
    if (folder / ".complete").exists():
        return folder
    made = folder.with_name(folder.name + ".making")
    shutil.rmtree(made, ignore_errors=True)
    written: list[Path] = []
    for number in range(spec.photos):
        data, extension = camera_photo(number, spec.size), "jpg"
        if number < spec.heic:
            data, extension = _as_heic(data), "heic"
        path = made / "2024" / f"{1 + number % 12:02d}" / f"IMG_{number:04d}.{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written.append(path)
    (made / "copies").mkdir(parents=True, exist_ok=True)
    for number in range(spec.copies):
        source = written[-1 - number % len(written)]
        shutil.copyfile(source, made / "copies" / f"copy {number} of {source.name}")
    (made / ".complete").write_text(spec.key)
    shutil.rmtree(folder, ignore_errors=True)
    made.rename(folder)
    return folder


def make_stat_library(folder: Path, files: int, distinct: int = 100) -> Path:
    """``files`` small JPEGs (``distinct`` contents, copied) for the rescan: a look reads no bytes, so
    only the number of files matters, not their size."""
    contents = [camera_photo(10_000 + number, (64, 48)) for number in range(distinct)]
    for number in range(files):
        path = folder / f"{number // 1000:03d}" / f"{number:06d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(contents[number % distinct])
    return folder
