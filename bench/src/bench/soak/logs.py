"""Reading the services' structured logs (LOG_FORMAT=json): one JSON object per line.

The soak checks that a person could follow what happened from the logs alone: every bad URL has
an event naming it (``url``) with a ``reason``, every invalid line of the URL file an event with
its ``line`` number. Lines that are not JSON (a library printing on its own) are counted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class LogEvents:
    events: list[dict[str, Any]] = field(default_factory=list)
    not_json: int = 0
    samples_not_json: list[str] = field(default_factory=list)

    def urls_with_reason(self) -> set[str]:
        return {str(e["url"]) for e in self.events if e.get("url") and e.get("reason")}

    def invalid_line_numbers(self) -> set[int]:
        return {int(e["line"]) for e in self.events if isinstance(e.get("line"), int)}


def read_json_log(path: Path) -> LogEvents:
    """Every line of ``path``; the soak's own ``=====`` start markers are skipped."""
    found = LogEvents()
    if not path.exists():
        return found
    for raw in path.read_text(errors="replace").splitlines():
        if not raw.strip() or raw.startswith("===== soak:"):
            continue
        try:
            event = json.loads(raw)
        except json.JSONDecodeError:
            event = None
        if isinstance(event, dict):
            found.events.append(event)
        else:
            found.not_json += 1
            if len(found.samples_not_json) < 3:
                found.samples_not_json.append(raw[:200])
    return found
