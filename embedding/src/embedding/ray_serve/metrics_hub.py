"""One ``/metrics`` for every replica: each sends its counters to a hub, which sums them.

The replicas run on any node, so prometheus_client's multiprocess mode (one folder of files, as
the LitServe service uses) cannot reach them all. Each replica keeps the service's own metrics
(:mod:`embedding.metrics`: the same names and labels as LitServe's) and sends a snapshot of them to
the hub every ``EMBEDDING_RAY_METRICS_PUSH_S``; the hub keeps the latest snapshot of every replica,
dead ones included (a counter never goes back when a replica is replaced), and answers ``/metrics``
with their sums. Counters and histograms sum; ``_created`` timestamps do not, so they are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from ray import serve

PREFIX = "dyimages_embedding_"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Family:
    """One metric family's samples in one replica: (sample name, sorted labels) -> value."""

    name: str
    kind: str  # counter, histogram
    documentation: str
    samples: dict[tuple[str, Labels], float]


def snapshot(registry: CollectorRegistry = REGISTRY) -> list[Family]:
    """This process's embedding metrics, ready to send (plain data: pickles across nodes)."""
    families = []
    for metric in registry.collect():
        if not metric.name.startswith(PREFIX):
            continue
        samples = {
            (sample.name, tuple(sorted(sample.labels.items()))): float(sample.value)
            for sample in metric.samples
            if not sample.name.endswith("_created")
        }
        families.append(Family(metric.name, metric.type, metric.documentation, samples))
    return families


class _Summed:
    """A collector over the sum of every replica's latest snapshot."""

    def __init__(self, snapshots: Iterable[list[Family]]) -> None:
        self._snapshots = list(snapshots)

    def collect(self) -> Iterable[Metric]:
        merged: dict[str, Metric] = {}
        totals: dict[str, dict[tuple[str, Labels], float]] = {}
        for families in self._snapshots:
            for family in families:
                merged.setdefault(family.name, Metric(family.name, family.documentation, family.kind))
                into = totals.setdefault(family.name, {})
                for key, value in family.samples.items():
                    into[key] = into.get(key, 0.0) + value
        for name, metric in merged.items():
            for (sample, labels), value in sorted(totals[name].items(), key=_bucket_order):
                metric.add_sample(sample, dict(labels), value)
            yield metric


def _bucket_order(item: tuple[tuple[str, Labels], float]) -> tuple[str, Labels, float]:
    """Samples grouped by name and labels, histogram buckets by their bound (``+Inf`` last)."""
    (sample, labels), _ = item
    bound = dict(labels).get("le")
    rest = tuple(pair for pair in labels if pair[0] != "le")
    return sample, rest, float(bound) if bound is not None else 0.0


def render(snapshots: Iterable[list[Family]]) -> bytes:
    """The Prometheus exposition text of the summed snapshots."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Summed(snapshots))
    return generate_latest(registry)


@serve.deployment(name="MetricsHub", num_replicas=1, ray_actor_options={"num_cpus": 0})
class MetricsHub:
    """Holds the latest snapshot of each replica; one replica, no CPU reserved (it only adds numbers)."""

    def __init__(self) -> None:
        self._latest: dict[str, list[Family]] = {}

    def record(self, replica: str, families: list[Family]) -> None:
        self._latest[replica] = families

    def exposition(self) -> tuple[bytes, str]:
        return render(self._latest.values()), CONTENT_TYPE_LATEST
