"""Record the demo: ``docs/demo.gif`` and ``docs/screenshots/*.png``, from the real stack and the real UI.

GENERATED FILES: ``docs/demo.gif`` and ``docs/screenshots/`` are written by ``python -m demo.record`` and
never edited by hand; run it again after a change to the UI (it needs RabbitMQ on 127.0.0.1:5672, Debian's
chromium and chromedriver).

Every part is the real one, started as a local process: a local HTTP server on 127.0.0.1 serves pictures
of the demo world (:mod:`testkit.demo_world`), the downloader (``DOWNLOADER_ALLOWED_NETWORKS=127.0.0.1/32``)
fetches the URLs written to its URL file, the indexer embeds them through the embedding service running
the demo model trained here (:mod:`demo.train_model`), and the Streamlit app answers in headless
Chromium. The embedded Qdrant folder allows one process at a time, so the app is stopped while the
indexer writes and started again after (with a Qdrant server both would run together).
"""

from __future__ import annotations

import contextlib
import html
import io
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from dyimages_common.urls.state import status_counts
from testkit import REPO_ROOT
from testkit.browser import IDLE_PAGE, QUERY_BOX, chromium, streamlit_app
from testkit.demo_library import demo_model_env
from testkit.demo_world import Scene, altered_copies, draw, encoded
from testkit.embedding import run_embedding_service
from testkit.http_server import ImageServer, Route
from testkit.procs import start_module, stop
from testkit.rabbit import delete_topology, rabbit_env, require_rabbitmq, unique_queue_name
from testkit.semantic_library import ENTRIES, ORIGINAL

DOCS = REPO_ROOT / "docs"
GIF = DOCS / "demo.gif"
SCREENSHOTS = DOCS / "screenshots"
FRAME_WIDTH = 960  # GIF frames; the README's screenshots keep the browser's 1400 px
FRAME_MS = 3000
# The steps the README shows as screenshots (every step is a GIF frame).
README_SCREENSHOTS = ("3-indexed", "4-text", "5-negative", "8-similar")
WAIT_S = 120
_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg"}
# Searched by image (not in the library): a red circle drawn with another seed, size and place.
UPLOAD = Scene("circle", "red", "large", "at the top right", "black")


def demo_pictures() -> dict[str, bytes]:
    """The library: the semantic tests' pictures (known answers) and three altered copies of one."""
    pictures = {
        f"{entry.name}.{'jpg' if entry.fmt == 'jpeg' else 'png'}": encoded(
            draw(entry.scene, 500 + i, entry.side), entry.fmt
        )
        for i, entry in enumerate(ENTRIES)
    }
    original = draw(ORIGINAL.scene, 500 + ENTRIES.index(ORIGINAL), ORIGINAL.side)
    for kind, data in altered_copies(original).items():
        with Image.open(io.BytesIO(data)) as image:
            extension = "jpg" if image.format == "JPEG" else "png"
        pictures[f"original-{kind}.{extension}"] = data
    return pictures


def _content_type(data: bytes) -> str:
    with Image.open(io.BytesIO(data)) as image:
        return _TYPES[str(image.format)]


def _captioned(image: Image.Image, caption: str) -> Image.Image:
    """The GIF's frame: the screenshot with what it shows written in the page's empty top band."""
    framed = image.copy()
    ImageDraw.Draw(framed).text((24, 18), caption, fill=(40, 40, 40), font=ImageFont.load_default(size=30))
    return framed


class Recorder:
    """Screenshots in order: each kept as a GIF frame, and saved as a PNG when the README shows it."""

    def __init__(self, driver: WebDriver) -> None:
        self.driver = driver
        self.frames: list[Image.Image] = []

    def shot(self, name: str, caption: str) -> None:
        time.sleep(1.0)  # let Streamlit finish fading in the last elements
        png = self.driver.get_screenshot_as_png()
        image = Image.open(io.BytesIO(png)).convert("RGB")
        if name in README_SCREENSHOTS:
            SCREENSHOTS.mkdir(parents=True, exist_ok=True)
            image.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(SCREENSHOTS / f"{name}.png", optimize=True)
        self.frames.append(_captioned(image, caption))
        print(f"  screenshot {name}", flush=True)

    def write_gif(self) -> None:
        height = round(self.frames[0].height * FRAME_WIDTH / self.frames[0].width)
        small = [
            f.resize((FRAME_WIDTH, height), Image.Resampling.LANCZOS).quantize(
                colors=128, method=Image.Quantize.MEDIANCUT
            )
            for f in self.frames
        ]
        small[0].save(GIF, save_all=True, append_images=small[1:], duration=FRAME_MS, loop=0, optimize=True)
        print(f"wrote {GIF} ({len(small)} frames, {GIF.stat().st_size:,} bytes)", flush=True)


def _wait(driver: WebDriver, condition: Callable[[WebDriver], object]) -> None:
    WebDriverWait(driver, WAIT_S, poll_frequency=0.2).until(condition)


def _results(count: int) -> Callable[[WebDriver], bool]:
    script = (
        "const images = Array.from(document.querySelectorAll('img[alt^=\"Result \"]'));"
        "return images.length >= arguments[0] && images.every(img => img.complete && img.naturalWidth > 0);"
    )
    return lambda d: bool(d.execute_script(script, count))


def _result_names(driver: WebDriver) -> list[str]:
    alts = driver.execute_script(
        "return Array.from(document.querySelectorAll('img[alt^=\"Result \"]')).map(i => i.alt)"
    )
    return [alt.rsplit("/", 1)[-1] for alt in alts]


def show_url_file(recorder: Recorder, urls_file: Path, workdir: Path) -> None:
    """The URL file as a page of its own (the downloader reads a file; there is no UI for it)."""
    page = workdir / "url-file.html"
    lines = html.escape(urls_file.read_text())
    page.write_text(
        "<html><body style='font-family:sans-serif;margin:40px'>"
        f"<h2>Step 1: URLs added to <code>image_urls.txt</code></h2>"
        "<p>The downloader watches this file; new lines are fetched within seconds.</p>"
        f"<pre style='background:#111;color:#ddd;padding:16px;font-size:15px'>{lines}</pre></body></html>"
    )
    recorder.driver.get(page.as_uri())
    recorder.shot("1-url-file", "1. Image URLs go into the URL file")


def show_status(recorder: Recorder, app_url: str, name: str, caption: str, indexed: int | None) -> None:
    driver = recorder.driver
    driver.get(f"{app_url}/status_page")
    _wait(driver, ec.presence_of_element_located((By.XPATH, '//*[contains(text(), "URLs downloaded or failed")]')))
    if indexed is not None:
        metrics = (
            "return Array.from(document.querySelectorAll('[data-testid=\"stMetricValue\"]')).map(e => e.innerText)"
        )
        _wait(driver, lambda d: f"{indexed:,}" in d.execute_script(metrics))
    recorder.shot(name, caption)


def search_text(recorder: Recorder, app_url: str, text: str, name: str, caption: str) -> list[str]:
    driver = recorder.driver
    driver.get(app_url)
    _wait(driver, ec.presence_of_element_located((By.XPATH, IDLE_PAGE)))
    box = WebDriverWait(driver, WAIT_S).until(ec.element_to_be_clickable((By.CSS_SELECTOR, QUERY_BOX)))
    box.send_keys(text, Keys.ENTER)
    _wait(driver, _results(8))
    recorder.shot(name, caption)
    return _result_names(driver)


def search_upload(recorder: Recorder, app_url: str, picture: Path) -> list[str]:
    driver = recorder.driver
    driver.get(app_url)
    _wait(driver, ec.presence_of_element_located((By.XPATH, IDLE_PAGE)))
    uploader = WebDriverWait(driver, WAIT_S).until(
        ec.presence_of_element_located((By.CSS_SELECTOR, 'input[type="file"]'))
    )
    uploader.send_keys(str(picture))
    _wait(driver, _results(8))
    recorder.shot("6-upload", "6. Search by an example picture (a red circle)")
    return _result_names(driver)


def click_similar(recorder: Recorder, rank: int) -> list[str]:
    """Click "Similar" under the result at ``rank`` (1-based) of the page shown now."""
    driver = recorder.driver
    before = _result_names(driver)
    buttons = driver.find_elements(By.XPATH, '//button[.//p[text()="Similar"]]')
    buttons[rank - 1].click()
    _wait(driver, lambda d: "More like image" in d.page_source and _result_names(d) != before and _results(8)(d))
    recorder.shot("8-similar", '8. "Similar" on #1: the other copies of that picture come first')
    return _result_names(driver)


@contextlib.contextmanager
def _process(module: str, env: dict[str, str], log: Path, *args: str) -> Iterator[subprocess.Popen[bytes]]:
    process = start_module(module, *args, env=env, log_path=log)
    try:
        yield process
    finally:
        stop(process)


def _wait_for(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what}")
        time.sleep(0.5)


def run_indexer(env: dict[str, str], log: Path) -> None:
    """``python -m indexer --exit-when-idle`` until it exits; one still running after :data:`WAIT_S` (seen
    once: queue drained, every point written, no exit) is stopped with SIGTERM, its graceful stop. The
    status page's count of indexed images (:func:`show_status`) then proves every picture was written."""
    process = start_module("indexer", "--exit-when-idle", env=env, log_path=log)
    try:
        code = process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        print(f"  the indexer had not exited after {WAIT_S} s; stopping it (SIGTERM)", flush=True)
        code = stop(process)
    if code != 0:
        raise RuntimeError(f"the indexer exited with {code}; see {log}")


def record(workdir: Path) -> None:
    require_rabbitmq()
    images_dir, logs = workdir / "images", workdir / "logs"
    images_dir.mkdir()
    logs.mkdir()
    urls_file = workdir / "image_urls.txt"
    urls_file.write_text("# one image URL a line\n")
    queue = unique_queue_name("demo")
    env = {
        **rabbit_env(queue),
        "IMAGES_DIR": str(images_dir),
        "URLS_FILE": str(urls_file),
        "QDRANT_PATH": str(workdir / "qdrant"),
        "DOWNLOADER_ALLOWED_NETWORKS": "127.0.0.1/32",
        "INDEXER_IDLE_EXIT_S": "2",
        "APP_TOP_K": "8",
        "LOG_LEVEL": "WARNING",
    }
    upload = workdir / "upload.png"
    draw(UPLOAD, 9001).save(upload)
    pictures = demo_pictures()
    state_db = images_dir / ".state" / "downloader.sqlite3"
    try:
        with (
            ImageServer() as server,
            run_embedding_service(images_dir, logs, **demo_model_env()) as embedding,
            chromium() as driver,
        ):
            env["EMBEDDING_SERVICE_URL"] = embedding.url
            driver.set_window_size(1400, 1180)  # two full rows of results
            recorder = Recorder(driver)
            urls = [
                server.add(f"/pictures/{name}", Route(body=d, content_type=_content_type(d)))
                for name, d in pictures.items()
            ]
            with (
                _process("downloader", env, logs / "downloader.log"),
                streamlit_app(env, logs / "app-1.log") as app_url,
            ):
                with urls_file.open("a") as file:
                    file.write("\n".join(urls) + "\n")
                show_url_file(recorder, urls_file, workdir)
                _wait_for(
                    "the downloads", lambda: state_db.exists() and status_counts(state_db).get("done", 0) == len(urls)
                )
                show_status(
                    recorder, app_url, "2-downloaded", "2. Status: downloaded, waiting to be indexed", indexed=None
                )
            # The app held the embedded Qdrant folder; the indexer takes it now, then the app again.
            run_indexer(env, logs / "indexer.log")
            with streamlit_app(env, logs / "app-2.log") as app_url:
                show_status(recorder, app_url, "3-indexed", "3. Status: every picture indexed", indexed=len(pictures))
                print(
                    "a red circle:",
                    search_text(recorder, app_url, "a red circle", "4-text", "4. Search by description: a red circle"),
                )
                print(
                    "circle -red:",
                    search_text(recorder, app_url, "circle -red", "5-negative", "5. A negative term: circle -red"),
                )
                print("upload:", search_upload(recorder, app_url, upload))
                search_text(
                    recorder,
                    app_url,
                    "a large green triangle at the top right",
                    "7-before-similar",
                    '7. A search, then "Similar" on the first result',
                )
                print("similar to #1 of 'a large green triangle at the top right':", click_similar(recorder, 1))
            recorder.write_gif()
    finally:
        delete_topology(queue)


def main() -> None:
    for old in SCREENSHOTS.glob("*.png"):  # a step renamed or dropped leaves no stale screenshot behind
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="dy-demo-") as workdir:
        record(Path(workdir))


if __name__ == "__main__":
    main()
