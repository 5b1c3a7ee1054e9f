"""The Serve application: the model replicas (autoscaled) and the metrics hub, deployed on a running cluster.

Replicas scale between ``EMBEDDING_RAY_MIN_REPLICAS`` and ``EMBEDDING_RAY_MAX_REPLICAS`` on the
requests in flight per replica (``EMBEDDING_RAY_TARGET_ONGOING_REQUESTS``); each reserves
``EMBEDDING_RAY_REPLICA_CPUS`` CPUs and ``EMBEDDING_RAY_REPLICA_GPUS`` GPUs, so Ray places them on
the nodes that have them (a head started with ``--num-cpus 0`` keeps only the proxy, the controller
and the hub). The settings are read once here and travel with the deployment to every replica.
"""

from __future__ import annotations

from typing import Any

from ray import serve
from ray.serve import Application

from embedding.ray_serve.metrics_hub import MetricsHub
from embedding.ray_serve.replica import Embedder
from embedding.ray_serve.settings import RaySettings


def autoscaling(settings: RaySettings) -> dict[str, Any]:
    """Serve's ``autoscaling_config`` for the model replicas."""
    return {
        "min_replicas": settings.embedding_ray_min_replicas,
        "initial_replicas": max(settings.embedding_ray_min_replicas, 1),
        "max_replicas": settings.embedding_ray_max_replicas,
        "target_ongoing_requests": settings.embedding_ray_target_ongoing_requests,
    }


def build_app(settings: RaySettings) -> Application:
    """The bound application: ``Embedder`` replicas that send their metrics to one ``MetricsHub``."""
    embedder = Embedder.options(
        autoscaling_config=autoscaling(settings),
        max_ongoing_requests=settings.embedding_ray_max_ongoing_requests,
        ray_actor_options={
            "num_cpus": settings.embedding_ray_replica_cpus,
            "num_gpus": settings.embedding_ray_replica_gpus,
        },
        # Loading the model (an ONNX export on a first start) may take minutes: no health check
        # counts as failed before the constructor returns; afterwards a hung replica is replaced.
        health_check_period_s=10,
        health_check_timeout_s=30,
        graceful_shutdown_timeout_s=settings.embedding_timeout_s,
    )
    return embedder.bind(settings, MetricsHub.bind())


def from_environment(args: dict[str, str]) -> Application:
    """Serve's application builder, for ``serve run embedding.ray_serve.app:from_environment`` and a KubeRay
    RayService's ``import_path``: the settings from the environment of the process that builds it."""
    return build_app(RaySettings())


def http_options(settings: RaySettings) -> dict[str, Any]:
    """Serve's proxy: the embedding service's host and port, and its request timeout (the clients')."""
    return {
        "host": settings.embedding_host,
        "port": settings.embedding_port,
        "request_timeout_s": settings.embedding_timeout_s,
    }


def deploy(settings: RaySettings) -> None:
    """Start Serve on the connected cluster (if it is not running) and deploy the application; returns
    once every replica has loaded the model."""
    serve.start(proxy_location=settings.embedding_ray_proxy, http_options=http_options(settings))
    serve.run(
        build_app(settings),
        name=settings.embedding_ray_app,
        route_prefix=settings.embedding_ray_route_prefix,
        blocking=False,
    )
