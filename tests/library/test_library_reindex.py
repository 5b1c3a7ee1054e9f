"""`dyimages reindex` keeps the photo library: the library's photos are republished from its state (one
message each, with every path), beside the stored downloads, and the rebuilt collection holds every
point with the same sources and the same vectors, as the user's folder is never copied anywhere the
reindex could read it from otherwise.

Real processes throughout, as in test_library_pipeline: the downloader scanning PHOTOS_DIR and fetching a
URL, the real RabbitMQ, the embedding service reading the folder, the indexer, the embedded store; the
reindex in its embedded-mode steps (publish, run the indexer, `--finish`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from dyimages_common.images.storage import sha256_hex
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.factory import open_store
from search_app.cli.main import app as cli
from testkit.downloader_state import wait_for_row
from testkit.embedding import run_embedding_service
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg, png
from testkit.photo_library import running_downloader
from tests.library.test_library_pipeline import Library, sources

pytestmark = pytest.mark.e2e


def _serving(library: Library) -> str | None:
    store = open_store(load_settings(QdrantSettings, qdrant_path=library.qdrant_path))
    try:
        return store.serving()
    finally:
        store.close()


def _reindex(library: Library, *args: str) -> str:
    with pytest.MonkeyPatch.context() as patch:
        for name, value in library.env.items():
            patch.setenv(name, value)
        result = CliRunner().invoke(cli, ["reindex", *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_reindex_rebuilds_the_library_s_points_with_their_paths(
    tmp_path: Path, rabbit_queue: str, image_server: ImageServer
) -> None:
    a, b, c = jpeg(1, size=(96, 72)), png(2, size=(80, 60)), jpeg(3, size=(96, 72))
    urls_file = tmp_path / "image_urls.txt"
    image_server.add("/c.jpg", Route(body=c))
    c_url = image_server.url("/c.jpg")
    urls_file.write_text(c_url + "\n")
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(a)
    (root / "copy of a.jpg").write_bytes(a)
    (root / "sub" / "b.png").write_bytes(b)
    with run_embedding_service(tmp_path / "images", tmp_path, PHOTOS_DIR=str(root)) as embedding:
        library = Library(tmp_path, rabbit_queue, embedding.url, urls_file)
        state_db = library.images_dir / ".state" / "downloader.sqlite3"
        with running_downloader(library.env, tmp_path / "downloader.log") as downloader:
            library.caught_up(3)
            wait_for_row(state_db, c_url, lambda row: row.status == "done", "the URL", process=downloader)
        library.index()
        before = library.points()
        expected = {
            sha256_hex(a): (["a.jpg", "copy of a.jpg"], []),
            sha256_hex(b): (["sub/b.png"], []),
            sha256_hex(c): ([], [c_url]),
        }
        assert sources(before) == expected
        old = _serving(library)

        said = _reindex(library)
        assert "with them 2 photo library image(s)" in " ".join(said.split()), said
        library.index()
        _reindex(library, "--finish")

        new = _serving(library)
        after = library.points()
        assert new != old, "the index was rebuilt in a new collection"
        assert sources(after) == expected, "every photo kept its paths, the download its URL"
        for sha, (_, vector) in before.items():
            np.testing.assert_allclose(after[sha][1], vector, atol=1e-5, err_msg=sha)
        library.check_vectors(after)
