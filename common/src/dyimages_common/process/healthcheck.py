"""Container healthcheck probe: ``python -m dyimages_common.process.healthcheck URL`` exits 0 on HTTP 200.

Slim images have no curl; this uses only the standard library.
"""

from __future__ import annotations

import sys
import urllib.request


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not argv[0].startswith(("http://127.0.0.1", "http://localhost")):
        sys.stderr.write("usage: python -m dyimages_common.process.healthcheck http://127.0.0.1:PORT/PATH\n")
        return 2
    try:
        with urllib.request.urlopen(argv[0], timeout=5) as response:  # noqa: S310 - local probe only
            return 0 if response.status == 200 else 1
    except OSError as exc:
        sys.stderr.write(f"unhealthy: {exc}\n")
        return 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
