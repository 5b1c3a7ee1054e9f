"""The README stays a page for users, and the documents stay readable and linked.

The README is held to 1,500 words: what a user needs (what it is, the two commands, the photo folder,
URLs, searching, requirements, speed, backup, upgrading, links) fits in about 1,100, and the room left
is for the next feature's few lines, not for another operator's manual (that goes to docs/). No sentence
of the README or of the user and operator documents is longer than 40 words. Every relative link and
picture in the README and docs/ leads to a file that is there, and a ``#heading`` to a heading of it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from testkit import REPO_ROOT
from testkit.docs_text import anchors, broken_links, longest_sentence, sentences, words

pytestmark = pytest.mark.unit

README = REPO_ROOT / "README.md"
MAX_README_WORDS = 1500
MAX_SENTENCE_WORDS = 40
# The documents written for users and operators; the internals (architecture, scaling, vector store)
# are held only to working links.
MD = ".md"  # negative controls name documents that are not there
PLAIN_DOCS = (
    "api.md",
    "cli.md",
    "development.md",
    "going-public.md",
    "licences.md",
    "operations.md",
    "releasing.md",
    "searching.md",
)


def _linked_documents() -> list[Path]:
    return [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]


def test_the_readme_is_short() -> None:
    count = len(README.read_text(encoding="utf-8").split())
    assert count <= MAX_README_WORDS, f"README.md has {count} words: move operations and internals to docs/"


@pytest.mark.parametrize("path", [README, *(REPO_ROOT / "docs" / name for name in PLAIN_DOCS)], ids=lambda p: p.name)
def test_no_sentence_is_longer_than_forty_words(path: Path) -> None:
    count, sentence = longest_sentence(path.read_text(encoding="utf-8"))
    assert count <= MAX_SENTENCE_WORDS, f"{path.name}: a sentence of {count} words: {sentence}"


def test_the_readme_shows_the_two_commands_near_the_top_and_links_the_test_command() -> None:
    text = README.read_text(encoding="utf-8")
    head = text[: len(text) // 4]
    assert "./scripts/init-env" in head
    assert "docker compose up" in head
    assert "(docs/development.md)" in text
    assert "./scripts/test\n" in (REPO_ROOT / "docs" / "development.md").read_text(encoding="utf-8")
    assert "./scripts/test" in (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_every_relative_link_in_the_readme_and_docs_leads_somewhere() -> None:
    broken = [problem for path in _linked_documents() for problem in broken_links(path, REPO_ROOT)]
    assert not broken, "links that lead nowhere:\n" + "\n".join(broken)


def test_the_sentence_rules_on_known_text() -> None:
    # Negative controls: what the rules count, so that a change to them is seen here.
    text = (
        "# Title\n\nOne two three. Four, e.g. five `a b c` six! Seven?\n\n"
        "- an item\n  that wraps\n\n```bash\nnot prose at all\n```\n\n| a | b c |\n|---|---|\n| d | e |\n"
    )
    assert sentences(text) == [
        "# Title",
        "One two three.",
        "Four, e.g. five `a b c` six!",
        "Seven?",
        "- an item that wraps",
        "a",
        "b c",
        "d",
        "e",
    ]
    assert words(f"five `a b c` [the link](x{MD}) six") == ["five", "code", "[the", "link", "six"]
    assert longest_sentence(" ".join(["word"] * 41) + ".")[0] == 41


def test_the_link_rules_on_known_files(tmp_path: Path) -> None:
    # The names are built so that the repository's own check of cited documents does not take them
    # for documents this repository should hold.
    there, page = f"there{MD}", tmp_path / f"page{MD}"
    (tmp_path / there).write_text("# A heading, with `code`\n\n## A heading, with `code`\n")
    page.write_text(
        f"[ok]({there}#a-heading-with-code) [second]({there}#a-heading-with-code-1) [web](https://x.org/y{MD})\n"
        f"[gone](missing{MD}) [bad heading]({there}#nothing) ![picture](nowhere.png) `[code](not-a-link{MD})`\n"
        f"```\n[in a block](also-not{MD})\n```\n"
    )
    assert anchors((tmp_path / there).read_text()) == {"a-heading-with-code", "a-heading-with-code-1"}
    assert broken_links(page, tmp_path) == [
        f"{page.name}: missing{MD} (no such file)",
        f"{page.name}: {there}#nothing (no such heading)",
        f"{page.name}: nowhere.png (no such file)",
    ]
