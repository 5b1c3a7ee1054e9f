"""deploy/k8s/, validated offline: nothing there is ever applied to a cluster from this repository (NOT RUN).

Built-in kinds are validated strictly against the Kubernetes 1.37 schemas ``kubernetes-validate``
ships; the custom resources (KubeRay's RayService, KEDA's ScaledObject, the RabbitMQ operator's
RabbitmqCluster), which those schemas do not cover, are checked here against what our services
need. Every environment variable a manifest gives a service is one that service reads.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from embedding.ray_serve.app import from_environment
from embedding.ray_serve.settings import RaySettings
from indexer.settings import IndexerSettings
from search_app.settings import AppSettings
from testkit import REPO_ROOT
from testkit.compose import variable_names

pytestmark = pytest.mark.unit

K8S = REPO_ROOT / "deploy" / "k8s"
CUSTOM = {"RayService", "ScaledObject", "RabbitmqCluster"}
VALUES = {"qdrant-values.yaml"}  # a Helm chart's values, not a manifest


def _manifests() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name not in VALUES)


def _documents() -> dict[str, dict[str, Any]]:
    """Each resource by kind/name."""
    found = {}
    for path in _manifests():
        for document in yaml.safe_load_all(path.read_text()):
            found[f"{document['kind']}/{document['metadata']['name']}"] = document
    return found


def _env(container: dict[str, Any]) -> set[str]:
    return {entry["name"] for entry in container.get("env", [])}


def test_every_file_says_it_was_not_run() -> None:
    for path in sorted(K8S.glob("*.yaml")):
        assert path.read_text().startswith("# NOT RUN"), path.name


def test_built_in_kinds_match_the_kubernetes_schemas() -> None:
    validate = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run(
        [str(validate), "--strict", "--kubernetes-version", "1.37.0", *map(str, _manifests())],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    unchecked = {line for line in result.stdout.splitlines() if "Couldn't find schema" in line}
    # The only resources no schema covers are the custom ones, each named here.
    assert all(any(f"kind {kind} " in line for kind in CUSTOM) for line in unchecked), unchecked
    assert len(unchecked) == len(CUSTOM)
    assert "INFO" in result.stdout  # kubernetes-validate reports each valid resource


def test_a_broken_manifest_is_refused(tmp_path: Path) -> None:
    """Negative control: a misspelt field in a Deployment fails the strict validation."""
    broken = yaml.safe_load((K8S / "indexer.yaml").read_text())
    broken["spec"]["replica"] = broken["spec"].pop("replicas")
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken))
    validate = Path(sys.executable).parent / "kubernetes-validate"
    result = subprocess.run([str(validate), "--strict", str(path)], capture_output=True, text=True, check=False)
    assert result.returncode != 0


def test_the_services_get_only_settings_they_read() -> None:
    documents = _documents()
    readers = {"Deployment/indexer": IndexerSettings, "Deployment/app": AppSettings}
    for name, settings in readers.items():
        (container,) = documents[name]["spec"]["template"]["spec"]["containers"]
        assert _env(container) <= variable_names(settings) | {"ENVIRONMENT"}, name
        assert next(e["value"] for e in container["env"] if e["name"] == "EMBEDDING_SERVICE_URL").startswith(
            "http://embedding-serve-svc:8000"  # the Serve Service KubeRay makes for the RayService `embedding`
        )
    ray = documents["RayService/embedding"]
    (head,) = ray["spec"]["rayClusterConfig"]["headGroupSpec"]["template"]["spec"]["containers"]
    assert _env(head) <= variable_names(RaySettings)


def test_the_ray_service_deploys_our_application_with_gpu_replicas() -> None:
    ray = _documents()["RayService/embedding"]
    (application,) = yaml.safe_load(ray["spec"]["serveConfigV2"])["applications"]
    module, builder = application["import_path"].split(":")
    assert (module, builder) == ("embedding.ray_serve.app", from_environment.__name__)
    cluster = ray["spec"]["rayClusterConfig"]
    assert cluster["rayVersion"] == "2.60.0"
    assert cluster["headGroupSpec"]["rayStartParams"]["num-cpus"] == "0"
    (workers,) = cluster["workerGroupSpecs"]
    (worker,) = workers["template"]["spec"]["containers"]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    env = {entry["name"]: entry["value"] for entry in head["env"]}
    assert float(env["EMBEDDING_RAY_REPLICA_GPUS"]) == 1


def test_keda_counts_unacknowledged_messages_and_rabbitmq_has_three_nodes() -> None:
    documents = _documents()
    (trigger,) = documents["ScaledObject/indexer"]["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["protocol"] == "http"  # over AMQP only ready messages count (kedacore/keda#5050)
    assert trigger["metadata"]["queueName"] == IndexerSettings().rabbitmq_queue
    assert documents["RabbitmqCluster/dyimages-rabbitmq"]["spec"]["replicas"] == 3
    qdrant = yaml.safe_load((K8S / "qdrant-values.yaml").read_text())
    assert qdrant["replicaCount"] == 3
    assert qdrant["config"]["cluster"]["enabled"] is True
