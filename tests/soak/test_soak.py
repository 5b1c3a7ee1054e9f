"""The short chaos soak, as CI runs it: ``python -m bench soak --quick``.

Real processes of every service (downloader, indexer, LitServe embedding with the tiny model), the
real RabbitMQ and an embedded Qdrant folder; the indexer and the embedding service are SIGKILLed
and restarted, the downloader restarted, the broker connections closed, poison messages
published. Afterwards `dyimages audit`'s own checks are the oracle. See bench/src/bench/soak/.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testkit import REPO_ROOT
from testkit.rabbit import require_rabbitmq


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_quick_soak_loses_nothing_balances_the_books_and_accounts_for_every_bad_url() -> None:
    require_rabbitmq()
    result = subprocess.run(
        [sys.executable, "-m", "bench", "soak", "--quick"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=840,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    figures = json.loads(result.stdout.strip().splitlines()[-1])

    assert figures["expected_good"] > 200
    assert figures["indexed"] == figures["expected_good"]
    assert figures["lost"] == 0
    assert figures["audit_problems"] == 0  # dyimages audit: every URL, file, point and dead letter accounted for
    assert figures["bad_expected"] >= 11  # every kind of bad URL at least once
    assert figures["unrecorded_bad"] == 0
    assert figures["queue_left"] == 0
    assert figures["dead_lettered"] == 3  # exactly the poison messages
    assert figures["kills"] >= 3  # SIGKILLs that landed with work in flight; idle ones do not count
    assert figures["calm_images_per_s"] > 0
    assert figures["chaos_images_per_s"] > 0
