"""The files ``bench downloader`` serves, and the local HTTP server process that serves them.

N distinct small JPEGs (320x240), and realistic photos: 2-20 MB JPEGs (baseline and progressive, up
to 24 megapixels) and PNGs, each copy made distinct bytes. The server runs in a process of its own
(``python -m bench.downloader_files serve``), so its CPU is not the downloader's.
"""

from __future__ import annotations

import io
import signal
import sys
import time
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

from testkit.http_server import ImageServer, Route
from testkit.images import jpeg
from testkit.procs import start_module, stop

IMAGE_SIZE = (320, 240)
# Realistic photos: (size, detail (noise sigma), format, encoder options); about 2 to 20 MB each.
PHOTOS: tuple[tuple[tuple[int, int], float, str, dict[str, object]], ...] = (
    ((3000, 2000), 7, "JPEG", {"quality": 92}),
    ((4000, 3000), 6, "JPEG", {"quality": 92}),
    ((6000, 4000), 10, "JPEG", {"quality": 92}),
    ((6000, 4000), 30, "JPEG", {"quality": 96, "progressive": True}),
    ((2000, 1500), 3, "PNG", {"compress_level": 1}),
    ((3000, 2000), 4, "PNG", {"compress_level": 1}),
    ((4000, 3000), 3.6, "PNG", {"compress_level": 1}),
)


def write_images(folder: Path, count: int) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    names = []
    for i in range(count):
        name = f"{i:05d}.jpg"
        (folder / name).write_bytes(jpeg(i, IMAGE_SIZE, quality=85))
        names.append(name)
    return names


def photo(seed: int, size: tuple[int, int], detail: float) -> Image.Image:
    """A photo-like image: smooth colour fields (upscaled random colours) plus sensor-like noise."""
    rng = np.random.default_rng(seed)
    width, height = size
    coarse = rng.integers(0, 256, (height // 64 + 2, width // 64 + 2, 3), dtype=np.uint8)
    base = np.asarray(Image.fromarray(coarse).resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noise = rng.normal(0, detail, (height, width, 1)).astype(np.int16)
    return Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8))


def write_photos(folder: Path, count: int) -> tuple[list[str], list[int]]:
    """``count`` photos cycling through PHOTOS; each copy made distinct by a comment (JPEG COM
    segment, PNG tEXt chunk), so every URL is a new image to store, as with real photos."""
    folder.mkdir(parents=True, exist_ok=True)
    encoded = []
    for seed, (size, detail, fmt, options) in enumerate(PHOTOS):
        buffer = io.BytesIO()
        photo(seed, size, detail).save(buffer, fmt, **options)
        encoded.append((fmt, buffer.getvalue()))
    names, sizes = [], []
    for i in range(count):
        fmt, data = encoded[i % len(encoded)]
        tag = f"bench photo {i}".encode()
        if fmt == "JPEG":
            data = data[:2] + b"\xff\xfe" + (len(tag) + 2).to_bytes(2, "big") + tag + data[2:]
            name = f"photo-{i:04d}.jpg"
        else:
            chunk = b"tEXt" + b"Comment\x00" + tag
            text = (len(chunk) - 4).to_bytes(4, "big") + chunk + zlib.crc32(chunk).to_bytes(4, "big")
            data = data[:33] + text + data[33:]  # after the signature and IHDR
            name = f"photo-{i:04d}.png"
        (folder / name).write_bytes(data)
        names.append(name)
        sizes.append(len(data))
    return names, sizes


def serve(folder: str, latency: str, port_file: str) -> None:
    """Child process: serve every file in ``folder`` under /<name> until SIGTERM."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})  # for sigwait, in every thread
    server = ImageServer(latency=float(latency)).start()
    for path in Path(folder).iterdir():
        server.add(f"/{path.name}", Route(body=path.read_bytes()))
    Path(port_file).write_text(str(server.port))
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    server.stop()


class ServerProcess:
    def __init__(self, folder: Path, latency: float, workdir: Path) -> None:
        self._port_file = workdir / f"port-{latency}"
        self._port_file.unlink(missing_ok=True)
        self._process = start_module(
            "bench.downloader_files", "serve", str(folder), str(latency), str(self._port_file), env={}
        )
        deadline = time.monotonic() + 60
        while not self._port_file.exists() or not self._port_file.read_text():
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the image server process did not start")
            time.sleep(0.05)
        self.base = f"http://127.0.0.1:{self._port_file.read_text()}"
        self.pid = self._process.pid

    def stop(self) -> None:
        stop(self._process)


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == "serve":
    serve(*sys.argv[2:])
