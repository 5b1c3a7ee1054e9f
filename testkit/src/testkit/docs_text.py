"""Markdown read the way the documentation checks need it: prose sentences, headings and relative links.

Kept apart from the tests so that the rules (what a sentence is, how GitHub names a heading's anchor)
have their own negative controls and can be run by hand: ``python -m testkit.docs_text README.md``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

FENCE = re.compile(r"^\s*(```|~~~)")
INLINE_CODE = re.compile(r"`[^`\n]+`")
COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
# A sentence ends at . ! ? (or … ) followed by a space, except after these short forms.
SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\betc)[.!?…]\)?\s+")
BLOCK_START = re.compile(r"^\s*(#{1,6}\s|[-*+]\s|\d+\.\s|\|)")


def without_code(text: str) -> list[str]:
    """The lines outside fenced code blocks and HTML comments: code is not prose."""
    lines, fenced = [], False
    for line in COMMENT.sub("", text).splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        lines.append("" if fenced else line)
    return lines


def prose_blocks(text: str) -> list[str]:
    """Paragraphs, list items, headings and table cells, each joined into one line."""
    blocks: list[list[str]] = []
    for line in without_code(text):
        if not line.strip():
            blocks.append([])
        elif line.lstrip().startswith("|"):
            if not re.fullmatch(r"[\s|:-]+", line):
                blocks.extend([cell] for cell in line.strip().strip("|").split("|"))
            blocks.append([])
        elif BLOCK_START.match(line) or not blocks:
            blocks.append([line])
        else:
            blocks[-1].append(line)
    return [" ".join(" ".join(block).split()) for block in blocks if any(part.strip() for part in block)]


def words(sentence: str) -> list[str]:
    """Words of a sentence; an inline code span (a command, a flag, a setting) counts as one word."""
    return INLINE_CODE.sub("code", LINK.sub(lambda m: m.group(0).split("](")[0], sentence)).split()


def sentences(text: str) -> list[str]:
    """Every prose sentence of a Markdown text, code blocks left out."""
    found = []
    for block in prose_blocks(text):
        masked = INLINE_CODE.sub(lambda m: "x" * len(m.group(0)), block)
        start = 0
        for end in SENTENCE_END.finditer(masked):
            found.append(block[start : end.end()].strip())
            start = end.end()
        found.append(block[start:].strip())
    return [sentence for sentence in found if sentence]


def longest_sentence(text: str) -> tuple[int, str]:
    return max(((len(words(s)), s) for s in sentences(text)), default=(0, ""))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = INLINE_CODE.sub(lambda m: m.group(0)[1:-1], heading.strip()).lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading anchor of a Markdown text, numbered as GitHub numbers repeated headings."""
    seen: dict[str, int] = {}
    found = set()
    for line in without_code(text):
        heading = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if not heading:
            continue
        slug = anchor(heading.group(1))
        found.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return found


def relative_links(text: str) -> list[str]:
    """Targets of inline and reference links and images that point inside the repository."""
    prose = "\n".join(INLINE_CODE.sub("", line) for line in without_code(text))
    targets = LINK.findall(prose) + REFERENCE.findall(prose)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE)]


def broken_links(path: Path, root: Path) -> list[str]:
    """The relative links of one Markdown file whose file, or heading in that file, is not there."""
    broken = []
    for target in relative_links(path.read_text(encoding="utf-8")):
        file_part, _, fragment = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists() or not linked.is_relative_to(root):
            broken.append(f"{path.relative_to(root)}: {target} (no such file)")
        elif fragment and linked.suffix == ".md" and fragment not in anchors(linked.read_text(encoding="utf-8")):
            broken.append(f"{path.relative_to(root)}: {target} (no such heading)")
    return broken


def main(paths: list[str]) -> None:
    """Print each file's word count and longest sentence: the figures the documentation test holds."""
    for name in paths:
        text = Path(name).read_text(encoding="utf-8")
        count, sentence = longest_sentence(text)
        print(f"{name}: {len(text.split())} words; longest sentence {count} words: {sentence}")


if __name__ == "__main__":
    main(sys.argv[1:])
