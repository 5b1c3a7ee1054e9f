"""The speed and memory the README promises are the quiet figures bench/RESULTS.md records.

Each figure the README states is tied here to the benchmark command that measured it and the field of
its JSON line: the section of RESULTS.md quoting that command must hold a **quiet** line whose field,
rounded as the README writes it, is the README's number. A rerun that moves a figure, or a README edit
that flatters one, fails until both say the same.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from testkit import REPO_ROOT

pytestmark = pytest.mark.unit

README = REPO_ROOT / "README.md"
RESULTS = REPO_ROOT / "bench" / "RESULTS.md"
# (the command, the field of its line, what the README makes of it, the README's words around the number)
FIGURES: list[tuple[str, str, Callable[[Any], float], str]] = [
    ("python -m bench ingest", "e2e_images_per_s", float, "{} images/s end to end"),
    ("python -m bench embedding", "onnx_images_per_s", float, "{} images/s through the service"),
    ("python -m bench library", "photos_per_s", float, "{} photos/s"),
    (
        "python -m bench library",
        "photos_per_s",
        lambda r: 1e4 / r / 60,
        "10,000 photos is searchable in about {} minutes",
    ),
    ("python -m bench library", "photos_per_s", lambda r: 1e5 / r / 3600, "100,000 in {} hours"),
    ("python -m bench library", "photos_per_s", lambda r: 1e6 / r / 86400, "a million in {} days on 2 cores"),
    (
        "python -m bench library",
        "",
        lambda line: line["decode_cpu_s_by_format"]["jpg"] / line["cpu_s_per_photo"]["model"],
        "which adds about {} of the model's time",
    ),
    (
        "python -m bench library",
        "decode_cpu_s_by_format",
        lambda by_format: by_format["heic"] / by_format["jpg"],
        "HEIC photo costs about {} times a JPEG's to decode",
    ),
    ("python -m bench query", "p50_ms", float, "p50 {} ms"),
    ("python -m bench query", "p99_ms", float, "p99 {} ms"),
    ("python -m bench embedding", "onnx_pss_mib", lambda mib: mib / 1024, "embedding service holds {} GB"),
    ("python -m bench library", "peak_rss_mb.embedding", lambda mib: mib / 1024, "up to {} GB while it decodes"),
    ("python -m bench library", "peak_rss_mb.downloader", lambda mib: mib / 1024, "the downloader about {} GB"),
    ("python -m bench library", "peak_rss_mb.indexer", lambda mib: mib / 1024, "the indexer about {} GB"),
]


def quiet_line(command: str) -> dict:
    """The quiet JSON line of the RESULTS.md section that quotes ``command`` (``Command: `…```)."""
    for section in RESULTS.read_text(encoding="utf-8").split("\n## "):
        if f"Command: `{command}`" not in section:
            continue
        for block in re.findall(r"```json\n(.*?)```", section, flags=re.DOTALL):
            for raw in block.strip().splitlines():
                line = json.loads(raw)
                if line.get("machine") == "quiet" and line.get("command") == command:
                    return line
    raise AssertionError(f"RESULTS.md has no quiet line of `{command}` in its section")


def field(line: dict, path: str) -> object:
    """The field at ``path`` (dotted), or the whole line for ``""``."""
    value: object = line
    for name in path.split(".") if path else ():
        assert isinstance(value, dict), path
        value = value[name]
    assert isinstance(value, int | float | dict), path
    return value


@pytest.mark.parametrize(("command", "name", "derive", "words"), FIGURES, ids=[f[3] for f in FIGURES])
def test_the_readme_states_the_quiet_figure(
    command: str, name: str, derive: Callable[[Any], float], words: str
) -> None:
    readme = " ".join(README.read_text(encoding="utf-8").split())
    pattern = re.escape(words).replace(re.escape("{}"), r"(\d+(?:\.\d+)?)")
    found = re.search(pattern, readme)
    assert found, f"the README does not say '{words.format('N')}'"
    stated = found.group(1)
    decimals = len(stated.partition(".")[2])
    measured = round(derive(field(quiet_line(command), name)), decimals)
    assert float(stated) == measured, f"README {words.format(stated)}, RESULTS.md {measured} ({command}: {name})"
