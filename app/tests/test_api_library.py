"""A photo of the photo folder (PHOTOS_DIR, indexed in place, never copied) through the API: its bytes and its
thumbnail come from the folder, read-only; a link that leads out of the folder is never read. The point is written
through the real store as the indexer writes a library photo (no scanner: the folder's files are the test's)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from dyimages_common.images.storage import sha256_hex
from dyimages_common.messaging.messages import LibraryFiles
from dyimages_common.store import builds as index_builds
from dyimages_common.store.types import ImageVector
from testkit.api_server import api_server
from testkit.images import jpeg
from testkit.index_points import MODEL, open_index

pytestmark = pytest.mark.integration


def add_library_photo(qdrant: Path, data: bytes, paths: tuple[str, ...]) -> str:
    sha256 = sha256_hex(data)
    facts = {"content_type": "image/jpeg", "width": 96, "height": 72, "bytes": len(data)}
    event = LibraryFiles(sha256=sha256, paths=paths, seq=1, modified_at=datetime.now(UTC), **facts)
    index = open_index(qdrant)
    try:
        vector = np.random.default_rng(1).normal(size=8).astype(np.float32)
        for target in index_builds.write_targets(index, dim=len(vector), model=MODEL, pretrained=None):
            index.write(target, [ImageVector(sha256, vector, [event])], model=MODEL)
    finally:
        index.close()
    return sha256


def test_a_library_photo_s_bytes_and_thumbnail_come_from_the_photo_folder(tmp_path: Path) -> None:
    photos, outside = tmp_path / "photos", tmp_path / "outside.jpg"
    (photos / "2024").mkdir(parents=True)
    data = jpeg(5, size=(96, 72))
    (photos / "2024" / "a.jpg").write_bytes(data)
    outside.write_bytes(jpeg(6, size=(96, 72)))
    (photos / "2024" / "link.jpg").symlink_to(outside)  # inside the folder, leading out of it
    sha = add_library_photo(tmp_path / "qdrant", data, ("2024/a.jpg",))
    escaping = add_library_photo(tmp_path / "qdrant", outside.read_bytes(), ("2024/link.jpg",))
    env = {
        "QDRANT_PATH": str(tmp_path / "qdrant"),
        "IMAGES_DIR": str(tmp_path / "images"),
        "PHOTOS_DIR": str(photos),
        "EMBEDDING_SERVICE_URL": "http://127.0.0.1:9",  # not asked: no search here
        "REDIS_URL": "",
    }
    with api_server(env, tmp_path / "api.log") as url, httpx.Client(base_url=url, timeout=60) as api:
        original = api.get(f"/api/v1/images/{sha}")
        assert original.status_code == 200, original.text
        assert original.content == data
        small = api.get(f"/api/v1/images/{sha}/thumbnail", params={"size": 48})
        assert small.status_code == 200, small.text
        assert max(Image.open(io.BytesIO(small.content)).size) == 48
        for refused in (f"/api/v1/images/{escaping}", f"/api/v1/images/{escaping}/thumbnail"):
            answer = api.get(refused)
            assert answer.status_code == 404, answer.text
    assert (photos / "2024" / "a.jpg").read_bytes() == data  # read where it lies, never written
