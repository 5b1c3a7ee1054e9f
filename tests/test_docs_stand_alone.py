"""The repository stands alone: every document a tracked file names is in the repository.

A reader who follows "see X.md" must find X.md here; notes that live outside the repository (a
design memo, a chat) are not a reference the project can cite.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]
DOC_NAME = re.compile(r"(?<![\w/.-])((?:[\w.-]+/)*[\w.-]+\.md)\b")
TEXT_SUFFIXES = {".md", ".py", ".sh", ".yml", ".yaml", ".toml", ".json", ".txt", ".example", ""}


def tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [ROOT / n for n in names.splitlines() if Path(n).suffix in TEXT_SUFFIXES and (ROOT / n).is_file()]


def cited_documents(text: str) -> set[str]:
    """Names of Markdown documents a text mentions, web addresses left out."""
    text = re.sub(r"https?://\S+", "", text)
    names = set(DOC_NAME.findall(text))
    # A link's text that names a web page by its host ("[example.org/x.md](https://…)") is a web address too.
    return {name for name in names if "." not in name.split("/")[0] or "/" not in name}


def test_the_pattern_finds_a_citation() -> None:
    # Negative control: a citation of a document that is not here is found.
    assert cited_documents("the payload contract (see NOTES.md) and docs/x.md") == {"NOTES.md", "docs/x.md"}
    assert cited_documents("https://example.org/README.md") == set()
    assert cited_documents("[example.org/docs/a.md](https://example.org/docs/a.md)") == set()


def test_every_cited_document_is_in_the_repository() -> None:
    present = {p.relative_to(ROOT).as_posix() for p in tracked_text_files() if p.suffix == ".md"}
    basenames = {Path(p).name for p in present}
    missing: list[str] = []
    for path in tracked_text_files():
        if path == Path(__file__).resolve():
            continue  # its own negative controls
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        for name in cited_documents(text):
            if name not in present and Path(name).name not in basenames:
                missing.append(f"{path.relative_to(ROOT)} cites {name}")
    assert not missing, "documents cited but not in the repository:\n" + "\n".join(missing)
