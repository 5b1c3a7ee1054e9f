"""Examples in a document that a test makes: commands and what they printed, between two markers.

A document's example output is never typed by hand: its test runs each command, renders the block, and
fails when the page differs; ``DYIMAGES_UPDATE_DOCS=1`` writes the block into the page instead.
"""

from __future__ import annotations

import os
from pathlib import Path

Example = tuple[str, str]


def parse_examples(script: str) -> list[Example]:
    """Pairs of (title, command) from a script of alternating title and command lines."""
    lines = script.strip().splitlines()
    return [(lines[i], lines[i + 1]) for i in range(0, len(lines), 2)]


def render(start: str, end: str, examples: list[Example], outputs: list[str]) -> str:
    """The block between the markers: each title, then its command and output as a console session."""
    parts = [start, ""]
    for (title, command), output in zip(examples, outputs, strict=True):
        parts += [f"{title}:", "", "```console", f"$ {command}", output.rstrip("\n"), "```", ""]
    return "\n".join([*parts, end])


def check_or_update(doc: Path, start: str, end: str, block: str) -> None:
    """Fail when the page's block is not ``block``, or, with DYIMAGES_UPDATE_DOCS=1, write it there."""
    text = doc.read_text()
    current = text[text.index(start) : text.index(end) + len(end)]
    if os.environ.get("DYIMAGES_UPDATE_DOCS") == "1":
        doc.write_text(text.replace(current, block))
        return
    assert current == block, f"the examples changed: rerun with DYIMAGES_UPDATE_DOCS=1 and commit {doc.name}"
