"""The monitoring assets: the Grafana dashboard is valid and names only metrics the services export.

The services are real processes: the embedding service (LitServe, tiny model), a downloader and an
indexer with METRICS_PORT set, pushing real images from a local HTTP server through the real
RabbitMQ into an embedded Qdrant folder. A bad URL and a poison message make the failure metrics
appear. Their /metrics endpoints are then scraped and every metric the dashboard queries must be
there.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aio_pika
import pytest
import yaml

from bench.soak.services import (
    RunDirs,
    Samples,
    Service,
    dashboard_metric_names,
    downloader_env,
    exported_families,
    free_port,
    indexer_env,
    metric_total,
    scrape,
    wait_for_metrics,
)
from dyimages_common.messaging.rabbit import declare_topology
from testkit import REPO_ROOT
from testkit.embedding import EmbeddingService
from testkit.http_server import ImageServer, Route
from testkit.images import jpeg, png
from testkit.rabbit import AMQP_URL

MONITORING = REPO_ROOT / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "dyimages.json"  # bench.soak_services reads the same
DATASOURCES = MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS = MONITORING / "grafana" / "provisioning" / "dashboards" / "dyimages.yml"
PROMETHEUS = MONITORING / "prometheus.yml"

# The metric contract (docs/architecture.md): every one of them has a panel.
CONTRACT = {
    "dyimages_downloader_downloaded_total": "counter",
    "dyimages_downloader_published_total": "counter",
    "dyimages_downloader_failed_total": "counter",
    "dyimages_downloader_download_seconds": "histogram",
    "dyimages_downloader_urls": "gauge",
    "dyimages_indexer_indexed_total": "counter",
    "dyimages_indexer_dead_lettered_total": "counter",
    "dyimages_indexer_batch_size": "histogram",
    "dyimages_indexer_embed_seconds": "histogram",
    "dyimages_indexer_upsert_seconds": "histogram",
    "dyimages_indexer_queue_depth": "gauge",
    "dyimages_indexer_retries_total": "counter",
    "dyimages_embedding_requests_total": "counter",
    "dyimages_embedding_items_total": "counter",
    "dyimages_embedding_batch_size": "histogram",
    "dyimages_embedding_latency_seconds": "histogram",
}
# Counted only when a service is down for a while; a calm run declares it without samples.
ONLY_UNDER_FAULTS = {"dyimages_indexer_retries_total"}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")


def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def base_name(sample_name: str) -> str:
    for suffix in HISTOGRAM_SUFFIXES:
        if sample_name.endswith(suffix) and sample_name.removesuffix(suffix) in CONTRACT:
            return sample_name.removesuffix(suffix)
    return sample_name


@pytest.mark.unit
def test_dashboard_is_a_valid_provisionable_dashboard() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    datasource_uid = yaml.safe_load(DATASOURCES.read_text())["datasources"][0]["uid"]
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == datasource_uid, panel["title"]
            assert target["expr"].count("(") == target["expr"].count(")"), target["expr"]
            assert target["refId"]


@pytest.mark.unit
def test_dashboard_shows_every_metric_of_the_contract_and_nothing_else() -> None:
    used = {base_name(name) for name in dashboard_metric_names()}
    assert used == set(CONTRACT)
    for name in dashboard_metric_names():
        kind = CONTRACT[base_name(name)]
        if kind == "histogram":
            assert name != base_name(name), f"{name}: a histogram is queried by _bucket/_sum/_count"


@pytest.mark.unit
def test_prometheus_scrapes_every_service_where_compose_runs_it() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}

    def targets(job: dict) -> set[str]:
        static = {t for group in job.get("static_configs", []) for t in group["targets"]}
        dns = {f"{name}:{sd['port']}" for sd in job.get("dns_sd_configs", []) for name in sd["names"]}
        return static | dns

    assert targets(jobs["downloader"]) == {"downloader:9100"}
    assert targets(jobs["indexer"]) == {"indexer:9100"}
    assert targets(jobs["embedding"]) == {"embedding:8000"}
    assert jobs["embedding"].get("metrics_path", "/metrics") == "/metrics"
    assert targets(jobs["rabbitmq"]) == {"rabbitmq:15692"}

    compose = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())["services"]
    scraped = set().union(*(targets(job) for job in jobs.values()))
    # Every service compose gives a metrics port is scraped on it.
    with_metrics = {
        f"{name}:{service['environment']['METRICS_PORT']}"
        for name, service in compose.items()
        if isinstance(service.get("environment"), dict) and "METRICS_PORT" in service["environment"]
    }
    assert {"downloader:9100", "indexer:9100", "app:9100", "api:9100"} <= with_metrics
    assert with_metrics <= scraped, f"not scraped: {with_metrics - scraped}"
    assert str(compose["embedding"]["environment"]["EMBEDDING_PORT"]) == "8000"
    # Grafana reads the dashboards from where the provider looks for them.
    provider_path = yaml.safe_load(DASHBOARD_PROVIDERS.read_text())["providers"][0]["options"]["path"]
    mounts = [str(volume).split(":") for volume in compose["grafana"]["volumes"]]
    assert ["./monitoring/grafana/dashboards", provider_path, "ro"] in mounts
    assert ["./monitoring/grafana/provisioning", "/etc/grafana/provisioning", "ro"] in mounts


# --- the running services -------------------------------------------------------------------


async def _publish_poison(queue: str) -> None:
    """A message no indexer can ever process (not JSON): it must be dead-lettered with a reason."""
    connection = await aio_pika.connect(AMQP_URL)
    async with connection:
        channel = await connection.channel()
        await declare_topology(channel, queue)  # the indexer may not have declared it yet
        await channel.default_exchange.publish(
            aio_pika.Message(b"{not json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue
        )


@pytest.fixture
def running_pipeline(
    tmp_path: Path,
    rabbit_queue: str,
    embedding_service: EmbeddingService,
    shared_images_dir: Path,
    image_server: ImageServer,
) -> Iterator[dict[str, int]]:
    """Downloader and indexer processes (the session's embedding service), images pushed through."""
    dirs = RunDirs(tmp_path)
    urls = [image_server.add(f"/m/{i}.jpg", Route(body=jpeg(70_000 + i))) for i in range(4)]
    urls.append(image_server.add("/m/4.png", Route(body=png(70_004))))
    urls.append(image_server.url("/m/missing.jpg"))  # 404: a failure with a reason
    dirs.urls_file.parent.mkdir(parents=True)
    dirs.urls_file.write_text("\n".join(urls) + "\n")
    ports = {"downloader": free_port(), "indexer": free_port()}
    # The downloader writes where the session's embedding service reads.
    dirs_env = {"IMAGES_DIR": str(shared_images_dir)}
    downloader = Service(
        "downloader",
        "downloader",
        downloader_env(dirs, rabbit_queue, ports["downloader"], DOWNLOADER_SUMMARY_S="1", **dirs_env),
        dirs.logs,
    )
    indexer = Service(
        "indexer",
        "indexer",
        indexer_env(
            dirs, rabbit_queue, embedding_service.url, ports["indexer"], INDEXER_PROGRESS_INTERVAL_S="1", **dirs_env
        ),
        dirs.logs,
    )
    try:
        indexer.start()
        wait_for_metrics(ports["indexer"], indexer)
        asyncio.run(_publish_poison(rabbit_queue))
        downloader.start()
        wait_for_metrics(ports["downloader"], downloader)
        yield {**ports, "embedding": int(embedding_service.url.rsplit(":", 1)[1])}
    finally:
        downloader.terminate()
        indexer.terminate()


def _scrape_all(ports: dict[str, int]) -> dict[str, Samples]:
    return {service: scrape(port) for service, port in ports.items()}


def _names(samples: dict[str, Samples]) -> set[str]:
    return {name for service_samples in samples.values() for name in service_samples}


def _counts(samples: dict[str, Samples]) -> tuple[float, float, float]:
    """(indexed, dead-lettered, failed URLs) so far."""
    return (
        metric_total(samples["indexer"], "dyimages_indexer_indexed_total"),
        metric_total(samples["indexer"], "dyimages_indexer_dead_lettered_total"),
        metric_total(samples["downloader"], "dyimages_downloader_failed_total"),
    )


@pytest.mark.integration
def test_every_dashboard_metric_is_exported_by_the_running_services(running_pipeline: dict[str, int]) -> None:
    wanted = {name for name in dashboard_metric_names() if base_name(name) not in ONLY_UNDER_FAULTS}
    for name, kind in CONTRACT.items():
        if kind == "histogram":
            wanted |= {name + suffix for suffix in HISTOGRAM_SUFFIXES}
    # 5 images indexed, the poison message dead-lettered, the 404 failed: then every panel has data.
    done = (5, 1, 1)
    deadline = time.monotonic() + 120
    samples = _scrape_all(running_pipeline)
    while (_counts(samples) != done or not wanted <= _names(samples)) and time.monotonic() < deadline:
        time.sleep(0.5)
        samples = _scrape_all(running_pipeline)
    assert wanted - _names(samples) == set(), "metrics the dashboard queries but no service exports"
    assert _counts(samples) == done

    # Counted only under faults, but declared from the start so the dashboard's query is valid.
    declared = {family for port in running_pipeline.values() for family in exported_families(port)}
    for name in ONLY_UNDER_FAULTS:
        assert name.removesuffix("_total") in declared or name in declared
