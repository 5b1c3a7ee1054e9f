"""The demo recording is in place: README opens with ``docs/demo.gif``, an animated GIF small enough to keep.

The GIF and the screenshots are written by ``python -m demo.record`` (the real stack driven in headless
Chromium; slow, so not run here). These checks catch a broken or oversized regeneration and a removed or
dangling reference in the README or the documents in docs/.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GIF = ROOT / "docs" / "demo.gif"
GIF_LINE = "![DY Images finding shapes by description](docs/demo.gif)"
MAX_GIF_BYTES = 2 * 1024 * 1024
MAX_SCREENSHOT_BYTES = 400 * 1024
IMAGE_REF = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def shown_pictures() -> set[str]:
    """Every picture the README and the documents in docs/ show, as a path from the repository's root."""
    shown = set()
    for page in (README, *sorted((ROOT / "docs").glob("*.md"))):
        for ref in IMAGE_REF.findall(page.read_text()):
            shown.add((page.parent / ref).resolve().relative_to(ROOT).as_posix())
    return shown


def test_demo_gif_is_an_animation_small_enough_to_keep() -> None:
    assert GIF.stat().st_size < MAX_GIF_BYTES
    with Image.open(GIF) as gif:
        assert gif.format == "GIF"
        assert gif.is_animated
        assert gif.n_frames >= 5
        assert gif.width <= 960


def test_readme_opens_with_the_demo_gif() -> None:
    """The GIF comes right after the title and the first paragraph: before any section."""
    lines = README.read_text().splitlines()
    first_section = next(i for i, line in enumerate(lines) if line.startswith("## "))
    assert GIF_LINE in lines[:first_section]


def test_readme_says_the_recording_is_regenerated_by_the_recorder() -> None:
    assert "python -m demo.record" in README.read_text()


def test_every_picture_the_documents_show_is_in_the_repository_and_small() -> None:
    refs = shown_pictures()
    screenshots = [ref for ref in refs if ref.startswith("docs/screenshots/")]
    assert any(f"({ref})" in README.read_text() for ref in screenshots), "the README shows no screenshot"
    for ref in refs:
        path = ROOT / ref
        assert path.is_file(), ref
    for ref in screenshots:
        assert (ROOT / ref).stat().st_size < MAX_SCREENSHOT_BYTES, ref


def test_every_screenshot_in_the_repository_is_shown_by_the_readme() -> None:
    """The recorder writes only the screenshots the documents show: a stale or orphaned one is caught here."""
    shown = shown_pictures()
    on_disk = {f"docs/screenshots/{path.name}" for path in (ROOT / "docs" / "screenshots").glob("*.png")}
    assert on_disk <= shown
