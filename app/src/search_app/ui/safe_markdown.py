"""Payload text shown in the UI as the text it is: every Markdown character escaped, links only to
http(s). A URL, a file name or an EXIF camera string comes from the outside; none may become a link,
an image or markup (Streamlit escapes raw HTML itself)."""

from __future__ import annotations

MARKDOWN_SPECIAL = set("\\`*_{}[]<>()#+-.!|~$:")


def markdown_text(text: object) -> str:
    """``text`` for Markdown, every Markdown character escaped."""
    return "".join(f"\\{c}" if c in MARKDOWN_SPECIAL else c for c in str(text))


def markdown_link(text: str, url: str) -> str:
    """A Markdown link to an http(s) URL from a payload, safe whatever characters either holds;
    anything else is shown as plain, escaped text."""
    escaped = markdown_text(text)
    if not url.lower().startswith(("http://", "https://")):
        return escaped
    return f"[{escaped}](<{url.replace('<', '%3C').replace('>', '%3E').replace(' ', '%20')}>)"
