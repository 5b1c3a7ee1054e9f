"""``decode_memory`` is an upper estimate of what ``inspect_image`` really allocates to decode.

Each case decodes in a fresh Python process and compares the growth of its peak RSS during
``inspect_image`` with the estimate: the estimate must cover it (with 8 MiB for allocator slack),
and must not be many times too large either (a bound that reserves far too much starves the
downloader).
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dyimages_common.images.checks import decode_memory

pytestmark = pytest.mark.unit

LIMITS = {"max_bytes": 50 * 2**20, "max_pixels": 50_000_000}
SLACK = 8 * 2**20

MEASURE = """
import json, sys
from dyimages_common.images.checks import inspect_image

def peak_rss():  # VmHWM, in bytes
    line = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024

data = open(sys.argv[1], "rb").read()
before = peak_rss()
inspect_image(data, max_bytes=50 * 2**20, max_pixels=50_000_000)
print(json.dumps({"grew": peak_rss() - before}))
"""


def _photo(size: tuple[int, int], fmt: str, **options: object) -> bytes:
    rng = np.random.default_rng(7)
    width, height = size
    coarse = rng.integers(0, 256, (height // 32 + 2, width // 32 + 2, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("fmt", "options"),
    [
        ("JPEG", {"progressive": True, "quality": 90}),
        ("JPEG", {"progressive": True, "quality": 90, "subsampling": 0}),  # 4:4:4: twice the coefficients
        ("JPEG", {"quality": 90}),
        ("PNG", {"compress_level": 1}),
        ("WEBP", {"quality": 80}),
    ],
    ids=["progressive-jpeg-420", "progressive-jpeg-444", "baseline-jpeg", "png", "webp"],
)
def test_the_estimate_covers_the_real_decode(tmp_path: Path, fmt: str, options: dict[str, object]) -> None:
    data = _photo((4000, 3000), fmt, **options)
    file = tmp_path / "image"
    file.write_bytes(data)
    estimate = decode_memory(data, **LIMITS)
    result = subprocess.run(
        [sys.executable, "-c", MEASURE, str(file)], capture_output=True, text=True, timeout=120, check=True
    )
    grew = json.loads(result.stdout)["grew"]
    assert grew <= estimate + SLACK, f"decoding took {grew / 2**20:.0f} MiB, estimated {estimate / 2**20:.0f} MiB"
    assert estimate <= 4 * grew + SLACK, f"estimated {estimate / 2**20:.0f} MiB for {grew / 2**20:.0f} MiB"
