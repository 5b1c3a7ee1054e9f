"""Nothing is retried forever: a poison image is isolated and dead-lettered, a service that is down is waited for.

The embedding service is the real one (the session's LitServe process). No real image makes the
real model crash or hang on demand, so a fault-injecting stand-in (``testkit.faulty_embedding``)
sits in front of it: it forwards everything, except that it answers 500, never answers, or dies for
a moment (cut connection, then every request failing), on an ``/embed`` request naming the poison
image (or answers it 504, too busy, a few times), or fails every request while it is told to.
"""

from __future__ import annotations

import time

import pytest

from dyimages_common.messaging.rabbit import DETAIL_HEADER, REASON_HEADER
from testkit.faulty_embedding import FaultyEmbedding

pytestmark = pytest.mark.integration

ATTEMPTS = 2
BATCH = 8


def _shas(points) -> set[str]:
    return {point.payload["sha256"] for point in points}


@pytest.mark.parametrize(
    ("action", "reason"), [("500", "embed_server_error"), ("hang", "embed_timeout"), ("crash", "embed_crashed")]
)
def test_a_poison_image_is_dead_lettered_with_its_reason_and_the_rest_indexed(
    rig, embedding_service, action: str, reason: str
) -> None:
    events = rig.images({"500": 7_000, "hang": 7_100, "crash": 7_300}[action], 13)
    poison = events[5]
    with FaultyEmbedding(embedding_service.url, poison={poison.path}, poison_action=action) as standin:
        rig.publish(events)
        # Bounded in requests (below) and in time by the run's timeout, which fails the test.
        # One batch in flight at a time: the second batch runs only once the poisoned one freed the slot.
        result = rig.run(
            timeout=240,
            EMBEDDING_SERVICE_URL=standin.url,
            EMBEDDING_TIMEOUT_S="6",
            INDEXER_BATCH_SIZE=str(BATCH),
            INDEXER_CONCURRENCY="1",
            INDEXER_EMBED_ATTEMPTS=str(ATTEMPTS),
        )
        poisoned_requests = standin.hits["poisoned"]

    assert result.returncode == 0, result.stderr[-3000:]
    [(body, headers)] = rig.dead_letters()
    assert poison.sha256.encode() in body
    assert headers[REASON_HEADER] == reason
    assert f"failed {ATTEMPTS} times while the embedding service answered other requests" in headers[DETAIL_HEADER]
    assert _shas(rig.points()) == {event.sha256 for event in events if event is not poison}
    assert rig.depths() == {"queued": 0, "dead_lettered": 0}  # drained above
    # Bounded: a failing batch of up to 8 is halved at most three times, then the image alone is
    # tried ATTEMPTS times.
    assert ATTEMPTS + 1 <= poisoned_requests <= 3 + ATTEMPTS, poisoned_requests


def test_a_service_failing_every_request_for_a_while_is_waited_for_and_nothing_is_dead_lettered(
    rig, embedding_service, processes
) -> None:
    """Every request failing (its probes too) is a service that is down, not a poison batch."""
    events = rig.images(7_200, 12)
    with FaultyEmbedding(embedding_service.url) as standin:
        indexer, log = rig.start(
            "--exit-when-idle", EMBEDDING_SERVICE_URL=standin.url, INDEXER_EMBED_ATTEMPTS=str(ATTEMPTS)
        )
        processes.append(indexer)
        rig.wait_for_log(log, r"consuming test\.", process=indexer)
        standin.failing = True
        rig.publish(events)
        deadline = time.monotonic() + 60
        while standin.hits["failed"] < 12:  # /embed, /health and probes failing, many times over
            assert time.monotonic() < deadline, standin.hits
            assert indexer.poll() is None, log.read_text()[-3000:]
            time.sleep(0.1)
        assert rig.depths()["dead_lettered"] == 0
        standin.failing = False
        assert rig.wait_for_exit(indexer, log, timeout=120) == 0

    assert _shas(rig.points()) == {event.sha256 for event in events}
    assert rig.depths() == {"queued": 0, "dead_lettered": 0}
    assert "does not pass its probe" in log.read_text()


def test_an_image_answered_504_is_not_blamed_the_service_was_too_busy_to_compute_it(rig, embedding_service) -> None:
    """504 means the request waited too long for the model and was never computed: overload, not poison.
    Even with one attempt allowed, the image is retried until computed, not dead-lettered (5 refusals:
    more than the splits of a batch of 6 would use up, were 504 blamed)."""
    events = rig.images(7_400, 6)
    busy = events[2]
    with FaultyEmbedding(embedding_service.url, poison={busy.path}, poison_action="504", poison_times=5) as standin:
        rig.publish(events)
        result = rig.run(timeout=180, EMBEDDING_SERVICE_URL=standin.url, INDEXER_EMBED_ATTEMPTS="1")
        refused = standin.hits["poisoned"]

    assert result.returncode == 0, result.stderr[-3000:]
    assert refused == 5
    assert rig.dead_letters() == []
    assert _shas(rig.points()) == {event.sha256 for event in events}
