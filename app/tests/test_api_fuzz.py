"""Schemathesis against the running API (a real uvicorn process over the indexed library, the real
embedding service and Redis): from its own OpenAPI document it generates valid and hostile requests (huge
limits, deep offsets, unicode, wrong types, bad bodies) and checks every answer: no 5xx, each status and
body as documented, a missing token refused, no answer slower than MAX_RESPONSE_S. The examples per
operation are bounded, and so is the run's time.

One check is left out, positive_data_acceptance (a request the schema allows must get a 2xx): what the
schema cannot say is refused with a 400 and a sentence, as the UI and the CLI refuse it: a text of only
negative terms or none (with the relevance order), an empty upload.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from testkit.api_server import api_server
from testkit.indexed_library import Library

pytestmark = pytest.mark.integration

TOKEN = "a-fuzzing-token-of-thirty-two-ch"
MAX_EXAMPLES = 15
MAX_RESPONSE_S = 5
MAX_TIME_S = 45


def test_schemathesis_finds_nothing(library: Library, tmp_path: Path) -> None:
    env = {**library.env, "API_TOKEN": TOKEN, "REDIS_URL": "redis://127.0.0.1:6379/0", "MAX_IMAGE_BYTES": "262144"}
    with api_server(env, tmp_path / "api.log") as url:
        run = subprocess.run(
            [
                sys.executable, "-m", "schemathesis.cli", "run", f"{url}/api/v1/openapi.json",
                "--checks", "all",
                "--exclude-checks", "positive_data_acceptance",
                "--max-examples", str(MAX_EXAMPLES),
                "--max-time", str(MAX_TIME_S),
                "--max-response-time", str(MAX_RESPONSE_S),
                "--seed", "25",
                "--workers", "1",
                "--header", f"Authorization: Bearer {TOKEN}",
                "--report", "junit", "--report-dir", str(tmp_path / "report"),
            ],
            capture_output=True,
            text=True,
            timeout=MAX_TIME_S + 60,
        )  # fmt: skip
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "Tested: 7" in run.stdout, run.stdout[-3000:]  # every operation was exercised
