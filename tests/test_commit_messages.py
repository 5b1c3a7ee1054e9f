"""Commit messages that can be scanned: every commit after the marker has a subject of at most 72
characters, a blank line before its body, and no internal tags (``H2's``, ``D1``).

History before the marker is not rewritten. The check works on a fresh clone and on a shallow one
(CI's): when the marker is outside a shallow history, every commit there is newer than it.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from testkit import REPO_ROOT

# The first commit held to these rules (common: group modules into subpackages).
MARKER = "dac7491"
# Commits after the marker that predate this check, named so that nothing else slips through.
GRANDFATHERED = {
    "3b1b923": "subject of 75 characters",
    "409897b": "subject of 73 characters",
    "1117dd2": "quotes the two tags this check flags",
    "75a982c": "subject of 74 characters",
    "f27a82f": "subject of 73 characters",
    "56e2c9f": "subject of 74 characters",
    "6a043e8": "subject of 73 characters",
    "06f68d3": "subject of 77 characters",
    "931f401": "subject of 74 characters",
    "072744a": "subject of 73 characters",
    "b2bbe5a": "subject of 74 characters",
    "ba5116a": "subject of 76 characters",
    "582fa35": "subject of 73 characters",
    "3f2195d": "subject of 74 characters",
}
MAX_SUBJECT = 72
_TAG = re.compile(r"\b[HD]\d{1,2}[a-z]?\b")


def problems(message: str) -> list[str]:
    """What is wrong with one commit message, in words; empty when it reads."""
    lines = message.rstrip("\n").split("\n")
    found = []
    if not lines[0].strip():
        found.append("empty subject")
    if len(lines[0]) > MAX_SUBJECT:
        found.append(f"subject of {len(lines[0])} characters (at most {MAX_SUBJECT})")
    if len(lines) > 1 and lines[1].strip():
        found.append("no blank line between the subject and the body")
    found += [f"internal tag {tag!r}" for tag in sorted(set(_TAG.findall(message)))]
    return found


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, f"git {' '.join(args)}: {result.stderr.strip()} (the check needs a git clone)"
    return result.stdout


def commits_after_marker() -> list[str]:
    """The commits the rules apply to: after the marker, or every one a shallow clone has without it."""
    probe = ["git", "cat-file", "-e", f"{MARKER}^{{commit}}"]
    if subprocess.run(probe, cwd=REPO_ROOT, stderr=subprocess.DEVNULL).returncode == 0:
        return _git("rev-list", f"{MARKER}..HEAD").split()
    assert _git("rev-parse", "--is-shallow-repository").strip() == "true", f"marker {MARKER} not in a full history"
    return _git("rev-list", "HEAD").split()


def test_every_commit_after_the_marker_reads() -> None:
    bad = {}
    for commit in commits_after_marker():
        if commit[:7] in GRANDFATHERED:
            continue
        found = problems(_git("log", "-1", "--format=%B", commit))
        if found:
            bad[commit[:10]] = found
    assert bad == {}, "history is not rewritten: the next commits follow the rules"


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("store: one subject\n\nThe why, and the evidence.\n", []),
        ("store: only a subject\n", []),
        ("x" * 73 + "\n", ["subject of 73 characters (at most 72)"]),
        ("store: a subject\nthe body at once\n", ["no blank line between the subject and the body"]),
        ("store: as H2's test\n\nSee D1, on an H100.\n", ["internal tag 'D1'", "internal tag 'H2'"]),
        ("\n\nbody only\n", ["empty subject"]),
    ],
)
def test_the_rules_flag_what_they_name(message: str, expected: list[str]) -> None:
    assert problems(message) == expected
