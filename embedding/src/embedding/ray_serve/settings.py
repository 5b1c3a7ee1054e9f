"""Settings of the Ray Serve backend: the embedding service's own, plus where the cluster is and how
replicas scale.

Every model and batching knob is the embedding service's (``MODEL_*``, ``EMBEDDING_MAX_BATCH_SIZE``,
``EMBEDDING_BATCH_TIMEOUT_MS``, ``EMBEDDING_TIMEOUT_S``, ...), read once where the application is
deployed and shipped to every replica, so the replicas on other nodes need no environment of their own.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from embedding.settings import EmbeddingSettings

DEPLOYMENT_NAME = "Embedder"


class RaySettings(EmbeddingSettings):
    ray_address: str = Field(
        "auto", min_length=1, description="The cluster to deploy on: host:port of the head's GCS, or auto."
    )
    embedding_ray_min_replicas: int = Field(1, ge=0, le=1024, description="Fewest model replicas (autoscaled).")
    embedding_ray_max_replicas: int = Field(2, ge=1, le=1024, description="Most model replicas (autoscaled).")
    embedding_ray_target_ongoing_requests: float = Field(
        2.0,
        gt=0,
        le=1024,
        description="Ongoing /embed requests per replica the autoscaler aims for: more adds replicas.",
    )
    embedding_ray_max_ongoing_requests: int = Field(
        8, ge=1, le=4096, description="Requests one replica takes at once; the rest wait in the proxy."
    )
    embedding_ray_replica_cpus: float = Field(1.0, ge=0, le=512, description="CPUs Ray reserves per replica.")
    embedding_ray_replica_gpus: float = Field(0.0, ge=0, le=64, description="GPUs Ray reserves per replica.")
    embedding_ray_app: str = Field(
        "embedding",
        pattern="^[a-z0-9][a-z0-9-]*$",
        description="The Serve application's name; another name deploys a second service beside it.",
    )
    embedding_ray_route_prefix: str = Field(
        "/",
        pattern="^/[a-z0-9-]*$",
        description="Where the application answers on the proxy: / (EMBEDDING_SERVICE_URL is the proxy), "
        "or /name (the URL ends in /name).",
    )
    embedding_ray_proxy: str = Field(
        "HeadOnly",
        pattern="^(HeadOnly|EveryNode)$",
        description="Where Serve runs its HTTP proxy: the head only, or every node.",
    )
    embedding_ray_metrics_push_s: float = Field(
        1.0, gt=0, le=60, description="How often each replica sends its counters to /metrics."
    )

    @model_validator(mode="after")
    def _replica_range(self) -> RaySettings:
        if self.embedding_ray_min_replicas > self.embedding_ray_max_replicas:
            raise ValueError("EMBEDDING_RAY_MIN_REPLICAS is above EMBEDDING_RAY_MAX_REPLICAS")
        return self
