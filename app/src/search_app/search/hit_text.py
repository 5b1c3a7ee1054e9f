"""How a result's date reads, the same in the CLI's table and the UI's captions.

The date shown is the one the date filter and the date order use (the payload's ``date``): the photo's
EXIF date when it has one, else when it was downloaded, which is then said. Both are shown as the UTC
day, as the ``--from``/``--to`` bounds and the UI's date range count them.
"""

from __future__ import annotations

from datetime import UTC

from search_app.search.model import Hit


def date_label(hit: Hit) -> str:
    """ "2024-05-06" for a photo's own date, "2024-05-06 (downloaded)" without one, "-" without either."""
    if hit.date is None:
        return "-"
    day = f"{hit.date.astimezone(UTC):%Y-%m-%d}"
    return day if hit.taken_at is not None else f"{day} (downloaded)"
