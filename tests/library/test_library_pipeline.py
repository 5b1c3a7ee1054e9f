"""A photo folder indexed where it lies, through the real pipeline: the downloader scanning PHOTOS_DIR, the
real RabbitMQ, the embedding service reading the photos from the same folder, the indexer, the embedded store.

The folder changes between indexer runs as a user's does: photos renamed, moved between folders, copied,
overwritten with new bytes, deleted, a photo both in the folder and downloaded from a URL, hostile files;
the downloader restarted in between. After each round every point is checked against the folder (its
paths, its URLs, its vector equal to the service's vector for the file's bytes), the embedding service's
own counter shows that a rename, a copy or a deletion embedded nothing, and a point with no source left
is gone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from dyimages_common.embeddings.client import EmbeddingClient, ImageRef
from dyimages_common.images.storage import sha256_hex
from dyimages_common.library import state as library_state
from dyimages_common.reasons import Reason
from dyimages_common.settings import QdrantSettings, load_settings
from dyimages_common.store.factory import open_store
from dyimages_common.store.points import ImagePoint
from search_app.cli.main import app as cli
from search_app.ui.safe_markdown import markdown_text
from testkit.app_driver import running_app
from testkit.embedding import run_embedding_service
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg, png
from testkit.photo_library import HOSTILE, add_hostile_files, broken_past_header, running_downloader
from testkit.rabbit import rabbit_env

pytestmark = pytest.mark.e2e

IMAGE_ITEMS = re.compile(r'^dyimages_embedding_items_total\{kind="image"\} ([0-9.e+]+)$', re.MULTILINE)


class Library:
    """The pipeline around one photo folder; the indexer runs to idle between the folder's changes."""

    def __init__(self, tmp_path: Path, queue: str, embedding_url: str, urls_file: Path) -> None:
        self.root = tmp_path / "photos"
        self.images_dir = tmp_path / "images"
        self.qdrant_path = tmp_path / "qdrant"
        self.log_dir = tmp_path
        self.embedding_url = embedding_url
        self.env = {
            **rabbit_env(queue),
            "IMAGES_DIR": str(self.images_dir),
            "URLS_FILE": str(urls_file),
            "PHOTOS_DIR": str(self.root),
            "QDRANT_PATH": str(self.qdrant_path),
            "EMBEDDING_SERVICE_URL": embedding_url,
            "DOWNLOADER_ALLOWED_NETWORKS": "127.0.0.1/32",
            "DOWNLOADER_LIBRARY_POLL_S": "0.3",
            "DOWNLOADER_LIBRARY_SETTLE_S": "0.3",
            "MAX_IMAGE_PIXELS": "1000000",
            "INDEXER_IDLE_EXIT_S": "1",
            "INDEXER_BATCH_WAIT_MS": "50",
        }
        self.state = library_state.library_state_path(self.images_dir / ".state" / "downloader.sqlite3")

    def caught_up(self, files: int, timeout: float = 60) -> None:
        """Until the scanner has recorded ``files`` files and the broker confirmed every message."""
        deadline = time.monotonic() + timeout
        while True:
            counts = library_state.counts(self.state)
            if counts["done"] + counts["failed"] == files and counts["unpublished"] == 0:
                return
            assert time.monotonic() < deadline, f"the scanner did not catch up: {counts}"
            time.sleep(0.2)

    def index(self) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "indexer", "--exit-when-idle"],
            env={**os.environ, **self.env},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr[-3000:]

    def points(self) -> dict[str, tuple[ImagePoint, np.ndarray]]:
        store = open_store(load_settings(QdrantSettings, qdrant_path=self.qdrant_path))
        try:
            return {point.sha256: (point, store.vector_of(point.sha256)) for _, point in store.points()}
        finally:
            store.close()

    def images_embedded(self) -> float:
        return float(IMAGE_ITEMS.search(httpx.get(f"{self.embedding_url}/metrics", timeout=5).text)[1])

    def check_vectors(self, found: dict[str, tuple[ImagePoint, np.ndarray]]) -> None:
        """Each point's vector is the one the service makes of its file's bytes now (the right file)."""
        with EmbeddingClient(self.embedding_url) as client:
            for point, vector in found.values():
                for path in point.library_paths:
                    fresh = client.embed_image_bytes((self.root / path).read_bytes())
                    np.testing.assert_allclose(vector, fresh, atol=1e-5, err_msg=path)


def dyimages(env: dict[str, str], *args: str) -> tuple[int, dict]:
    """`dyimages ARGS --json` in this process (typer's runner), with the pipeline's environment."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        result = CliRunner().invoke(cli, [*args, "--json"])
    return result.exit_code, json.loads(result.stdout)


def shown_in_the_app(env: dict[str, str]) -> None:
    """The UI: a hit shows its path in the photo folder, **Folder** keeps one folder, and the status page
    lists the refused files by path."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        with running_app() as at:
            at.text_input(key="folder").set_value("2024/").run()
            at.radio(key="order").set_value("newest").run()  # no query: the folder's photos by date
            assert not at.exception, at.exception
            assert [hit.library_paths for hit in at.session_state["hits"]] == [["2024/summer/a.jpg"]]
            cards = [text.value for text in at.markdown if text.value.startswith("**#")]
            assert markdown_text("2024/summer/a.jpg") in cards[0], "the hit shows its path (escaped Markdown)"
            at.switch_page("status_page.py").run()
            assert not at.exception, at.exception
            tables = [frame.value.to_dict("records") for frame in at.dataframe]
            refused = next(rows for rows in tables if rows and "path" in rows[0])
            assert {row["path"] for row in refused} == set(HOSTILE)


def sources(found: dict[str, tuple[ImagePoint, np.ndarray]]) -> dict[str, tuple[list[str], list[str]]]:
    return {sha: (point.library_paths, point.urls) for sha, (point, _) in found.items()}


def test_a_photo_folder_is_indexed_in_place_and_follows_every_change(
    tmp_path: Path, rabbit_queue: str, image_server: ImageServer
) -> None:
    a, b, c, c_new = jpeg(1, size=(96, 72)), png(2, size=(80, 60)), jpeg(3, size=(96, 72)), jpeg(4, size=(96, 72))
    urls_file = tmp_path / "image_urls.txt"
    image_server.add("/c.jpg", Route(body=c))
    urls_file.write_text(image_server.url("/c.jpg") + "\n")
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(a)
    (root / "copy of a.jpg").write_bytes(a)
    (root / "sub" / "b.png").write_bytes(b)
    (root / "c.jpg").write_bytes(c)  # also downloaded from the URL: one point, both sources
    add_hostile_files(root, tmp_path / "outside")
    files = 4 + len(HOSTILE)
    with run_embedding_service(tmp_path / "images", tmp_path, PHOTOS_DIR=str(root)) as embedding:
        library = Library(tmp_path, rabbit_queue, embedding.url, urls_file)
        with running_downloader(library.env, tmp_path / "downloader.log"):
            library.caught_up(files)
            library.index()
            found = library.points()
            c_url = image_server.url("/c.jpg")
            assert sources(found) == {
                sha256_hex(a): (["a.jpg", "copy of a.jpg"], []),
                sha256_hex(b): (["sub/b.png"], []),
                sha256_hex(c): (["c.jpg"], [c_url]),
            }
            assert found[sha256_hex(c)][0].path  # the download is stored; the library's photos are not copied
            assert found[sha256_hex(a)][0].path == ""
            assert {file.stem for file in library.images_dir.glob("??/??/*")} == {sha256_hex(c)}
            assert found[sha256_hex(a)][0].folders == []
            assert found[sha256_hex(b)][0].folders == ["sub"]
            library.check_vectors(found)
            with EmbeddingClient(embedding.url) as client:  # the service resolves a library path under PHOTOS_DIR
                asked = ("a.jpg", "../outside/secret.jpg", "hostile/link-out.jpg", "hostile/folder-out/secret.jpg")
                answer = client.embed_images([ImageRef(library_path=path) for path in asked])
            assert [error.reason if error else None for error in answer.errors] == [None, *[Reason.UNSAFE_PATH] * 3]
            embedded = library.images_embedded()

            # Renamed, moved, copied: the points' paths follow, nothing is embedded again.
            (root / "2024" / "summer").mkdir(parents=True)
            os.rename(root / "a.jpg", root / "2024" / "summer" / "a.jpg")
            os.rename(root / "sub" / "b.png", root / "b.png")
            shutil.copyfile(root / "b.png", root / "b copy.png")
            (root / "copy of a.jpg").unlink()
            (root / "c.jpg").write_bytes(c_new)  # new bytes at the same path
            library.caught_up(files)
            library.index()
            found = library.points()
            assert sources(found) == {
                sha256_hex(a): (["2024/summer/a.jpg"], []),
                sha256_hex(b): (["b copy.png", "b.png"], []),
                sha256_hex(c): ([], [c_url]),  # the old bytes lose the path, keep their URL
                sha256_hex(c_new): (["c.jpg"], []),
            }
            assert found[sha256_hex(a)][0].folders == ["2024", "2024/summer"]
            assert library.images_embedded() == embedded + 1, "only the new bytes were embedded"
            library.check_vectors(found)
            embedded = library.images_embedded()

        # While the downloader is down, both copies of b are deleted: b's point has no source left.
        (root / "b.png").unlink()
        (root / "b copy.png").unlink()
        with running_downloader(library.env, tmp_path / "downloader.log"):
            library.caught_up(files - 2)
            library.index()
        found = library.points()
        assert sources(found) == {
            sha256_hex(a): (["2024/summer/a.jpg"], []),
            sha256_hex(c): ([], [c_url]),
            sha256_hex(c_new): (["c.jpg"], []),
        }
        assert library.images_embedded() == embedded, "a restart embeds nothing again"

        # The books balance: every file accounted for (the hostile ones refused with their reason), no
        # point without a source; `dyimages failures` shows the refused files by path; the folder filter.
        status, report = dyimages(library.env, "audit")
        assert (status, report["problems"]) == (0, [])
        assert report["counts"]["library"] == {
            "recorded": files - 2,
            "done": 2,
            "failed": len(HOSTILE),
            "in_folder": files - 2,
            "error": None,
        }
        status, failures = dyimages(library.env, "failures")
        assert {row["path"]: row["reason"].split(":")[0] for row in failures["library_files"]} == HOSTILE
        status, found_in = dyimages(library.env, "search", "--order", "newest", "--folder", "2024/")
        assert [hit["library_paths"] for hit in found_in["results"]] == [["2024/summer/a.jpg"]]
        shown_in_the_app(library.env)
        (root / "c.jpg").unlink()  # the scanner is not running: the books no longer balance
        status, report = dyimages(library.env, "audit")
        assert status == 1
        assert [(p["kind"], p["path"]) for p in report["problems"]] == [
            ("library_row_without_file", "c.jpg"),
        ]


def test_a_photo_the_embedding_service_cannot_decode_gets_its_reason_by_path(tmp_path: Path, rabbit_queue: str) -> None:
    """The downloader checks a library JPEG from its header (one decode per photo, the embedding
    service's); a photo broken past its header is refused by the service, and its reason lands in the
    library's state by path, for every copy, not in the dead-letter queue: `dyimages failures` shows
    it, the audit balances, and `dyimages retry` reads it again."""
    good, broken = jpeg(11, size=(96, 72)), broken_past_header(12)
    root = tmp_path / "photos"
    (root / "2024").mkdir(parents=True)
    (root / "good.jpg").write_bytes(good)
    (root / "2024" / "broken.jpg").write_bytes(broken)
    (root / "copy of broken.jpg").write_bytes(broken)
    urls_file = tmp_path / "image_urls.txt"
    urls_file.write_text("")
    broken_paths = {"2024/broken.jpg", "copy of broken.jpg"}

    def refused_paths() -> dict[str, str]:
        return {f.path: Reason.of_error(f.reason).value for f in library_state.failures(library.state, limit=-1)}

    def until_refused(what: str) -> None:
        deadline = time.monotonic() + 60
        while refused_paths() != dict.fromkeys(broken_paths, "corrupt_image"):
            assert time.monotonic() < deadline, (
                f"{what}: the refusal never reached the library state: {refused_paths()}"
            )
            time.sleep(0.2)

    with run_embedding_service(tmp_path / "images", tmp_path, PHOTOS_DIR=str(root)) as embedding:
        library = Library(tmp_path, rabbit_queue, embedding.url, urls_file)
        with running_downloader(library.env, tmp_path / "downloader.log"):
            library.caught_up(3)
            assert refused_paths() == {}, "the header check passes it: only a decode finds it broken"
            library.index()
            until_refused("first read")
            library.caught_up(3)
            library.index()  # the message that the broken bytes have no path left
            assert sources(library.points()) == {sha256_hex(good): (["good.jpg"], [])}
            status, failures = dyimages(library.env, "failures")
            assert status == 0
            assert {row["path"]: row["reason"].split(":")[0] for row in failures["library_files"]} == dict.fromkeys(
                broken_paths, "corrupt_image"
            )
            assert failures["dead_letters"] == []
            status, report = dyimages(library.env, "audit")
            assert (status, report["problems"]) == (0, [])
            assert report["counts"]["library"]["failed"] == 2

            embedded = library.images_embedded()
            status, retried = dyimages(library.env, "retry", "--url", "2024/broken.jpg")
            assert (status, retried["matching_paths"]) == (0, ["2024/broken.jpg"])
            deadline = time.monotonic() + 30
            while "2024/broken.jpg" in refused_paths():  # read again, sent again
                assert time.monotonic() < deadline, "the retry never read the photo again"
                time.sleep(0.2)
            library.caught_up(3)
            library.index()
            until_refused("retried")
            assert library.images_embedded() == embedded, "still nothing embedded from the broken bytes"
            library.caught_up(3)
            library.index()
        status, report = dyimages(library.env, "audit")
        assert (status, report["problems"]) == (0, [])
