"""/metrics on Ray: the hub sums every replica's counters and histograms, dead replicas' included.

Each "replica" here is a real prometheus_client registry holding the service's metric families, as
a replica process does; the hub's exposition is parsed back with prometheus_client's own parser.
"""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.parser import text_string_to_metric_families

from embedding.items import Job, Result
from embedding.ray_serve.metrics_hub import render, snapshot
from embedding.ray_serve.replica import joined, pieces
from embedding.ray_serve.settings import RaySettings

pytestmark = pytest.mark.unit


def _replica(requests: int, batches: list[int]) -> CollectorRegistry:
    registry = CollectorRegistry()
    counter = Counter("dyimages_embedding_requests_total", "Embed requests", ["kind", "status"], registry=registry)
    sizes = Histogram("dyimages_embedding_batch_size", "Items per pass", buckets=(1, 8, 32), registry=registry)
    Counter("other_metric_total", "not the service's", registry=registry).inc()
    counter.labels(kind="image", status="200").inc(requests)
    for size in batches:
        sizes.observe(size)
    return registry


def _samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text.decode())
        for sample in family.samples
    }


def test_the_hub_sums_the_replicas_counters_and_histograms() -> None:
    one, two = snapshot(_replica(3, [1, 32])), snapshot(_replica(4, [8]))
    samples = _samples(render([one, two]))
    assert samples[("dyimages_embedding_requests_total", (("kind", "image"), ("status", "200")))] == 7
    assert samples[("dyimages_embedding_batch_size_count", ())] == 3
    assert samples[("dyimages_embedding_batch_size_sum", ())] == 41
    assert samples[("dyimages_embedding_batch_size_bucket", (("le", "8.0"),))] == 2
    assert samples[("dyimages_embedding_batch_size_bucket", (("le", "+Inf"),))] == 3
    assert not any(name.startswith("other_metric") or name.endswith("_created") for name, _ in samples)


def test_a_replica_that_is_gone_still_counts() -> None:
    """The hub keeps each replica's last snapshot: a replaced replica never makes a counter go back."""
    dead, alive = snapshot(_replica(5, [])), snapshot(_replica(1, []))
    total = _samples(render([dead, alive]))
    assert total[("dyimages_embedding_requests_total", (("kind", "image"), ("status", "200")))] == 6


def test_a_request_is_cut_into_pieces_the_batch_limit_allows_and_joined_in_order() -> None:
    job = Job("text", list(range(70)))
    parts = pieces(job, 32, deadline=1.0)
    assert [len(p.job.inputs) for p in parts] == [32, 32, 6]
    back = joined([Result(list(p.job.inputs), [None] * len(p.job.inputs)) for p in parts])
    assert back.vectors == list(range(70))


def test_fewer_replicas_than_the_minimum_is_refused() -> None:
    with pytest.raises(ValueError, match="MIN_REPLICAS"):
        RaySettings(embedding_ray_min_replicas=3, embedding_ray_max_replicas=2)
