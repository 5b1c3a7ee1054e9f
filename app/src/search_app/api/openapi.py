"""The API's OpenAPI document, generated from the code: ``python -m search_app.api.openapi [PATH]`` prints
it, or writes it to PATH (the committed copy is ``docs/openapi.json``; a test fails when they differ)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from search_app.api.app import create_app


def document() -> dict[str, Any]:
    """The OpenAPI document, with the bearer token declared (asked for when API_TOKEN is set)."""
    spec = create_app().openapi()
    spec.setdefault("components", {})["securitySchemes"] = {
        "token": {"type": "http", "scheme": "bearer", "description": "API_TOKEN, when it is set."}
    }
    spec["security"] = [{}, {"token": []}]
    return spec


def text() -> str:
    return json.dumps(document(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main() -> None:
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(text())
    else:
        sys.stdout.write(text())


if __name__ == "__main__":
    main()
