"""Ray Serve beside LitServe: ``python -m bench embedding --server ray [--quick] [options]``.

The same embedding service run both ways in one run, on the same cores, with the same model
(ViT-B-32, random weights), runtime (ONNX Runtime on a CPU), model and decode threads, batch size and
images (the options of ``python -m bench embedding``):

* LitServe: ``python -m embedding`` (its default, one model worker);
* Ray: a one-node cluster (``python -m embedding.ray_serve head``: GCS, raylet, dashboard process,
  Serve controller, proxy, metrics hub) with one replica that reserves the threads' CPUs.

Images: C concurrent clients send requests of B stored paths, the two servers taking turns in rounds
(the order alternates); medians over rounds, ``ray_images_ratio`` = Ray ÷ LitServe. Text: one text
per request, the servers alternating text by text; ``ray_text_ratio`` = Ray p50 ÷ LitServe p50.
``{server}_peak_rss_mib``: the largest PSS of each server's whole process tree (:mod:`bench.pss`;
Ray's head, GCS, raylet and dashboard included), sampled through the run. Then the Ray application is
redeployed with two replicas, each reserving half the CPUs (the same threads in all):
``ray_two_replicas_images_per_s`` and ``ray_second_replica_ratio`` (two ÷ one) say what a second
replica adds on the same cores. Neither server does a subset of the other's work, so no ratio is
impossible but the second replica's above 2 (two replicas cannot more than double on shared cores).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.embedding_sides import SETTLE_S, make_photos, service_env, service_images_per_s, service_text_ms
from bench.figures import Limit
from bench.pss import PeakPss
from bench.texts import query_texts
from dyimages_common.embeddings.client import EmbeddingClient
from testkit.embedding import embedding_env, run_embedding_service
from testkit.ray_cluster import DEFAULT_APP, ray_cluster

SERVERS = ("litserve", "ray")
REQUIRED = (
    "ray_images_per_s",
    "litserve_images_per_s",
    "ray_images_ratio",
    "ray_round_ratios",
    "ray_text_p50_ms",
    "litserve_text_p50_ms",
    "ray_text_ratio",
    "ray_peak_rss_mib",
    "litserve_peak_rss_mib",
    "ray_two_replicas_images_per_s",
    "ray_second_replica_ratio",
    "runtime",
    "threads",
    "decode_threads",
    "batch",
    "clients",
    "rounds",
    "queries",
)
LIMITS = {
    "ray_second_replica_ratio": Limit(at_most=2.0, why="two replicas on the same cores cannot more than double one"),
}


def _export(env: dict[str, str], images_dir: Path) -> None:
    """The ONNX bundle, exported ahead (once per model): the figures are the serving ones."""
    subprocess.run(
        [sys.executable, "-m", "embedding", "export"],
        env={**os.environ, **embedding_env(images_dir, 8000), **env},
        check=True,
    )


def _rounds(clients: dict[str, EmbeddingClient], args: argparse.Namespace, paths: list[str]) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {name: [] for name in clients}
    for index in range(args.rounds):
        order = list(clients) if index % 2 == 0 else list(reversed(clients))
        for name in order:
            rates[name].append(service_images_per_s(clients[name], paths, args.batch, args.clients))
        print(f"round {index + 1}: " + ", ".join(f"{n} {rates[n][-1]:.1f} images/s" for n in clients), flush=True)
    return rates


def _texts(clients: dict[str, EmbeddingClient], texts: list[str]) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {name: [] for name in clients}
    for index, text in enumerate(texts):
        order = list(clients) if index % 2 == 0 else list(reversed(clients))
        for name in order:
            time.sleep(SETTLE_S)
            times[name].append(service_text_ms(clients[name], text))
    return times


def run(args: argparse.Namespace) -> dict[str, Any]:
    """The figures (``args``: ``bench.embedding``'s parsed options)."""
    if args.device != "cpu":
        raise SystemExit("--server ray compares the CPU runtime (ONNX Runtime) only; run it with --device cpu")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    env = {**service_env(args), "EMBEDDING_RUNTIME": "onnx"}
    one = {"EMBEDDING_RAY_MIN_REPLICAS": "1", "EMBEDDING_RAY_MAX_REPLICAS": "1"}
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-embedding-ray-") as tmp:
        root = Path(tmp)
        images_dir = root / "images"
        paths = make_photos(images_dir, args.images)
        _export(env, images_dir)
        with contextlib.ExitStack() as stack:
            litserve = stack.enter_context(run_embedding_service(images_dir, root, **env))
            one_replica = {**env, **one, "EMBEDDING_RAY_REPLICA_CPUS": str(args.threads)}
            cluster = stack.enter_context(
                ray_cluster(images_dir, root / "ray-logs", workers=0, head_cpus=args.threads, **one_replica)
            )
            urls = {"litserve": litserve.url, "ray": cluster.url}
            clients = {name: stack.enter_context(EmbeddingClient(urls[name], timeout=600)) for name in SERVERS}
            memory = {"litserve": PeakPss(litserve.pid), "ray": PeakPss(cluster.head.pid)}
            for sampler in memory.values():
                stack.enter_context(sampler)
            devices = {name: client.info().device for name, client in clients.items()}
            for client in clients.values():  # one warm-up request each, outside the clock
                service_images_per_s(client, paths[: args.batch], args.batch, 1)
            rates = _rounds(clients, args, paths)
            times = _texts(clients, query_texts(args.queries))
            peaks = {name: max(sampler.peak_mib, sampler.sample()) for name, sampler in memory.items()}
            # A second replica on the same cores: each reserves half the CPUs, the threads split between them.
            # The one-replica application goes first, so that its CPUs are free for the two.
            half = str(max(1, args.threads // 2))
            cluster.delete(DEFAULT_APP)
            two_replicas = {
                **env,
                "EMBEDDING_RAY_MIN_REPLICAS": "2",
                "EMBEDDING_RAY_MAX_REPLICAS": "2",
                "EMBEDDING_RAY_REPLICA_CPUS": str(args.threads / 2),
                "EMBEDDING_TORCH_THREADS": half,
                "EMBEDDING_DECODE_THREADS": "1",
            }
            cluster.deploy(DEFAULT_APP, images_dir, route="/", **two_replicas)
            two = _rounds({"ray": clients["ray"]}, args, paths)["ray"]
            peaks["ray"] = max(peaks["ray"], memory["ray"].sample())
    images = {name: statistics.median(values) for name, values in rates.items()}
    text = {name: statistics.median(values) for name, values in times.items()}
    figures |= {
        **{f"{name}_images_per_s": round(images[name], 2) for name in SERVERS},
        "ray_images_ratio": round(images["ray"] / images["litserve"], 3),
        "ray_round_ratios": [round(r / s, 3) for r, s in zip(rates["ray"], rates["litserve"], strict=True)],
        **{f"{name}_text_p50_ms": round(text[name], 1) for name in SERVERS},
        "ray_text_ratio": round(text["ray"] / text["litserve"], 3),
        **{f"{name}_peak_rss_mib": peaks[name] for name in SERVERS},
        "ray_two_replicas_images_per_s": round(statistics.median(two), 2),
        "ray_second_replica_ratio": round(statistics.median(two) / images["ray"], 3),
        "devices": devices,
        "runtime": "onnx",
        "threads": args.threads,
        "decode_threads": args.decode_threads,
        "batch": args.batch,
        "clients": args.clients,
        "images_per_round": args.images,
        "rounds": args.rounds,
        "queries": args.queries,
        "omp_wait_policy": os.environ["OMP_WAIT_POLICY"],
    }
    if any(device != "cpu" for device in devices.values()):
        raise RuntimeError(f"asked for the CPU, but the servers ran on {devices}")
    return figures
