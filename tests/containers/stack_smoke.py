"""The container smoke: the real docker-compose.yml and the real Dockerfile, built and run on a Docker
engine, checked the way a user meets the stack. Run by ``scripts/test-containers`` (which provides the
engine, the stand-in images and a throwaway copy of the repository in ``SMOKE_REPO``); the file name
keeps it out of the plain pytest run.

What cannot be had on this machine, and what the smoke does instead (each said again where it matters):
- no image can be pulled: Python, uv, RabbitMQ, Redis, Prometheus and nginx are local stand-ins built from
  Debian packages and the uv wheel (scripts/lib/standin-images.sh);
- no Qdrant server image: ``compose.smoke.yml`` runs the indexer and the app on qdrant-client's
  embedded store in a shared volume, one process at a time (the store locks its folder);
- no Grafana image: its password guard runs in the Python stand-in instead;
- no model weights can be downloaded: ``.env`` says ``MODEL_PRETRAINED=none`` (random weights; an image
  still finds itself first, its vector is the same);
- no GPU: the GPU override is only parsed and merged.

The embedding service runs its CPU image (no PyTorch) on the ONNX bundle that the one-shot
``embedding-export`` job (an image with PyTorch) wrote into the model-cache volume.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from testkit.browser import chromium, result_images, search_in_browser
from testkit.compose_stack import PHOTOS, SUBNET, Stack, image_of, write_photos

REPO = Path(os.environ.get("SMOKE_REPO", "/nonexistent"))
OVERRIDE = Path(__file__).with_name("compose.smoke.yml")
RAY_OVERRIDE = Path(__file__).with_name("compose.smoke-ray.yml")  # the Ray worker's build, as OVERRIDE's
OUR_SERVICES = ("downloader", "indexer", "embedding", "app")
BUILT = (*OUR_SERVICES, "embedding-export")  # the export job's image carries PyTorch (EXTRAS=torch)
RUNNING = ("rabbitmq", "redis", "embedding", "downloader", "indexer", "app", "api", "ui", "photos")
# Image sizes from the last smoke before the CPU embedding image dropped PyTorch (MB, same machine).
SIZES_BEFORE_MB = {"embedding": 6194, "app": 709, "downloader": 343, "indexer": 333}
APP_URL = "http://127.0.0.1:8501"
PROXY_PORT = 18080  # the proxy's published port (PROXY_PUBLISH_HTTP); 80 may be taken on a test machine
PROXY_URL = f"http://127.0.0.1:{PROXY_PORT}"
REPORT: dict[str, Any] = {}


def _container_stderr(result: subprocess.CompletedProcess[str]) -> list[str]:
    """What the container wrote to stderr, without the engine's own warnings (IP forwarding is off)."""
    return [line for line in result.stderr.splitlines() if not line.startswith("WARNING: IPv4 forwarding")]


def _wait_scraped(stack: Stack, jobs: set[str], timeout: float = 120) -> None:
    """Until Prometheus reports every target of ``jobs`` up (fails with each target's last error)."""
    deadline = time.monotonic() + timeout
    while True:
        body = stack.exec("prometheus", "wget", "-qO-", "http://127.0.0.1:9090/api/v1/targets").stdout
        targets = [t for t in json.loads(body)["data"]["activeTargets"] if t["labels"]["job"] in jobs]
        health = {t["labels"]["job"]: (t["health"], t.get("lastError", "")) for t in targets}
        if set(health) == jobs and all(state == "up" for state, _ in health.values()):
            return
        if time.monotonic() > deadline:
            pytest.fail(f"scrape targets not all up: {health}")
        time.sleep(3)


def _cache_lookups(stack: Stack, outcome: str) -> float:
    """The app's query-cache counter (Redis lookups of query vectors) for one outcome."""
    return stack.metric("app", 9100, f'dyimages_app_query_cache_total{{kind="vector",outcome="{outcome}"}}')


def _env_value(name: str) -> str:
    match = re.search(rf"^{name}=(.*)$", (REPO / ".env").read_text(), flags=re.M)
    assert match, f"{name} not in .env"
    return match.group(1).strip()


def _photo_url(name: str) -> str:
    return f"http://photos:8080/{name}.jpg"


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    assert (REPO / "docker-compose.yml").exists(), "run this through scripts/test-containers (SMOKE_REPO)"
    photos = REPO.parent / "photos"
    write_photos(photos)
    stack = Stack(REPO, OVERRIDE, photos, RUNNING)
    yield stack
    stack.compose("--profile", "*", "down", "-v", "--remove-orphans", check=False)
    print("\n[smoke] summary:", json.dumps(REPORT, indent=1))


def test_without_env_compose_says_in_one_line_what_to_set(stack: Stack) -> None:
    assert not (REPO / ".env").exists()
    result = stack.compose("config", "-q", files=("docker-compose.yml",), check=False)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert re.search(
        r"Set (RABBITMQ_PASSWORD|QDRANT_API_KEY) in \.env \(see \.env\.example\)|Add COMPOSE_PROFILES=direct to \.env",
        lines[0],
    )


def test_init_env_is_all_a_first_start_needs_and_a_missing_password_is_one_clear_line(stack: Stack) -> None:
    subprocess.run(["./scripts/init-env"], cwd=REPO, check=True, env=stack.env)
    env_file = REPO / ".env"
    written = env_file.read_text()
    stack.compose("config", "-q", files=("docker-compose.yml",))
    # A wrong .env: the RabbitMQ password emptied.
    env_file.write_text(re.sub(r"^RABBITMQ_PASSWORD=.*$", "RABBITMQ_PASSWORD=", written, flags=re.M))
    result = stack.compose("config", "-q", files=("docker-compose.yml",), check=False)
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert "Set RABBITMQ_PASSWORD in .env" in result.stderr
    # No Grafana password: the default stack still starts (the monitoring profile is off) ...
    env_file.write_text(re.sub(r"^GRAFANA_ADMIN_PASSWORD=.*$", "GRAFANA_ADMIN_PASSWORD=", written, flags=re.M))
    stack.compose("config", "-q", files=("docker-compose.yml",))
    env_file.write_text(written)
    # What this machine needs on top (said here, not hidden): no weights can be downloaded, so random
    # weights; the photo server is on the compose network, which the SSRF guard refuses by default.
    with env_file.open("a") as out:
        out.write(f"\n# container smoke only\nMODEL_PRETRAINED=none\nDOWNLOADER_ALLOWED_NETWORKS={SUBNET}\n")


def test_grafana_refuses_to_start_without_its_password(stack: Stack) -> None:
    """Grafana's image cannot be had here: its entrypoint from the merged config runs in the Python
    stand-in (a stand-in for the Grafana image), which has /bin/sh but no /run.sh."""
    config = json.loads(
        stack.compose("--profile", "monitoring", "config", "--format", "json", files=("docker-compose.yml",)).stdout
    )
    # `compose config` prints `$` escaped as `$$`; the container gets it unescaped.
    entrypoint = [part.replace("$$", "$") for part in config["services"]["grafana"]["entrypoint"]]
    image = os.environ["SMOKE_PYTHON_IMAGE"]
    refused = stack.docker(
        "run",
        "--rm",
        "-e",
        "GF_SECURITY_ADMIN_PASSWORD=",
        "--entrypoint",
        entrypoint[0],
        image,
        *entrypoint[1:],
        check=False,
    )
    assert refused.returncode == 1
    assert _container_stderr(refused) == ["Set GRAFANA_ADMIN_PASSWORD in .env to use the monitoring profile"]
    allowed = stack.docker(
        "run",
        "--rm",
        "-e",
        "GF_SECURITY_ADMIN_PASSWORD=x",
        "--entrypoint",
        entrypoint[0],
        image,
        *entrypoint[1:],
        check=False,
    )
    assert allowed.returncode == 127, "with a password the guard hands over to Grafana's /run.sh"


def test_gpu_override_parses_and_merges(stack: Stack) -> None:
    """Parsed and merged only: running it needs an NVIDIA GPU and the NVIDIA Container Toolkit,
    which this machine does not have."""
    config = json.loads(
        stack.compose("config", "--format", "json", files=("docker-compose.yml", "docker-compose.gpu.yml")).stdout
    )
    embedding = config["services"]["embedding"]
    assert embedding["environment"]["DEVICE"] == "cuda"
    assert embedding["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"
    assert embedding["build"]["target"] == "embedding"
    assert embedding["build"]["args"] == {"MEMBER": "embedding", "EXTRAS": "torch"}, "the GPU image carries PyTorch"
    assert embedding["environment"]["EMBEDDING_RUNTIME"] == "torch"
    print("\n[smoke] GPU override: parsed and merged; not run (needs an NVIDIA GPU and its container toolkit)")


def _ui_publishers(config: dict[str, Any]) -> dict[str, list[str]]:
    """Services that publish a port forwarding to the UI (8501 in the ui service, the proxy's ports)."""
    return {
        name: [f"{p.get('host_ip', '')}:{p['published']}" for p in service.get("ports", [])]
        for name, service in config["services"].items()
        if service.get("ports") and name in {"app", "ui", "proxy"}
    }


def test_the_profiles_decide_who_publishes_the_ui_and_an_old_env_gets_one_line(stack: Stack) -> None:
    """The real compose CLI on the .env init-env wrote: a ``--profile`` on the command line replaces
    COMPOSE_PROFILES=direct from .env, so ``--profile public`` alone leaves only the proxy in front."""

    def config(*profiles: str) -> dict[str, Any]:
        args = [arg for profile in profiles for arg in ("--profile", profile)]
        return json.loads(stack.compose(*args, "config", "--format", "json", files=("docker-compose.yml",)).stdout)

    default = config()
    assert "proxy" not in default["services"]
    assert _ui_publishers(default) == {"ui": ["127.0.0.1:8501"]}, "docker compose up: the UI on localhost:8501"
    public = config("public")
    assert "ui" not in public["services"]
    assert _ui_publishers(public) == {"proxy": [":80", ":443"]}, "--profile public: only the proxy"
    monitoring = config("direct", "monitoring")
    assert {"prometheus", "grafana", "ui"} <= set(monitoring["services"])
    assert _ui_publishers(monitoring) == {"ui": ["127.0.0.1:8501"]}
    both = config("public", "monitoring")
    assert _ui_publishers(both) == {"proxy": [":80", ":443"]}
    # An .env from before the `direct` profile: one line saying what to add, not a silently unpublished UI.
    env_file = REPO / ".env"
    written = env_file.read_text()
    env_file.write_text(re.sub(r"^COMPOSE_PROFILES=.*\n", "", written, flags=re.M))
    try:
        for profiles in ((), ("--profile", "public")):
            result = stack.compose(*profiles, "config", "-q", files=("docker-compose.yml",), check=False)
            assert result.returncode != 0
            assert result.stderr.strip().splitlines() == [result.stderr.strip()]
            assert "Add COMPOSE_PROFILES=direct to .env" in result.stderr
    finally:
        env_file.write_text(written)


@pytest.mark.timeout(3600)
def test_every_service_image_builds_from_the_one_dockerfile(stack: Stack) -> None:
    started = time.monotonic()
    stack.compose("build", *BUILT, timeout=3600)
    REPORT["build_seconds"] = round(time.monotonic() - started)
    sizes, code_sizes = {}, {}
    for service in BUILT:
        image = json.loads(stack.docker("image", "inspect", image_of(service)).stdout)[0]
        assert image["Config"]["User"] == "dyimages"
        assert not any(var.startswith("SSL_CERT_FILE=") for var in image["Config"]["Env"]), "no build CA in images"
        sizes[service] = round(image["Size"] / 1e6)
        # The service's own code is a small layer of its own: a code change does not re-ship the deps.
        history = stack.docker(
            "history", "--no-trunc", "--human=false", "--format", "{{json .}}", image_of(service)
        ).stdout
        code_layers = [json.loads(line) for line in history.splitlines() if "COPY /layer/ /" in line]
        assert len(code_layers) == 1, history
        code_sizes[service] = int(code_layers[0]["Size"])
        assert code_sizes[service] < image["Size"] / 100, f"{service}: the code layer is not small beside the deps"
    REPORT["image_sizes_mb"] = sizes
    # The README's disk figures (Requirements) are these sizes, to a tenth of a GB.
    readme = " ".join((REPO / "README.md").read_text().split())
    ours = re.search(r"about (\d+\.\d) GB for the four images built here", readme)
    export = re.search(r"The one-shot model export takes (\d+\.\d) GB more", readme)
    assert ours, "the README's disk figure for our images"
    assert export, "the README's disk figure for the export image"
    assert abs(float(ours[1]) - sum(sizes[name] for name in OUR_SERVICES) / 1000) <= 0.15, (ours[1], sizes)
    assert abs(float(export[1]) - sizes["embedding-export"] / 1000) <= 0.15, (export[1], sizes)
    REPORT["image_sizes_mb_before"] = SIZES_BEFORE_MB
    REPORT["code_layer_sizes"] = code_sizes
    print(f"\n[smoke] build: {REPORT['build_seconds']} s; code layers: {code_sizes}")
    for service, size in sizes.items():
        print(f"[smoke] image {service}: {size} MB (before: {SIZES_BEFORE_MB.get(service, '-')} MB)")

    # The CPU serving image has no PyTorch (nor CUDA libraries); the export job's image has it.
    def imports(service: str, module: str) -> subprocess.CompletedProcess[str]:
        return stack.docker(
            "run", "--rm", "--entrypoint", "python", image_of(service), "-c", f"import {module}", check=False
        )

    no_torch = imports("embedding", "torch")
    assert no_torch.returncode == 1, no_torch
    assert "No module named 'torch'" in no_torch.stderr
    for module in ("open_clip", "nvidia", "torchvision"):
        assert imports("embedding", module).returncode == 1, f"{module} in the CPU embedding image"
    assert imports("embedding", "onnxruntime").returncode == 0
    assert imports("embedding-export", "torch, open_clip, onnx").returncode == 0
    assert sizes["embedding"] < 1500, "the CPU embedding image should not carry PyTorch"


@pytest.mark.timeout(1200)
def test_up_build_brings_every_container_healthy_and_none_runs_as_root(stack: Stack) -> None:
    print("\n[smoke] no Qdrant server image here: indexer and app use the embedded store (compose.smoke.yml)")
    started = time.monotonic()
    stack.up("--build")
    REPORT["first_up_seconds"] = round(time.monotonic() - started)
    # The app publishes nothing itself; the ui pass-through publishes the UI on this machine only.
    published = stack.published()
    assert published["app"] == set()
    assert published["ui"] == {8501}
    assert "proxy" not in published
    for row in stack.containers():
        if row["Service"] == "embedding-export":  # exited (checked by stack.up); ran as the image's user
            assert json.loads(stack.docker("inspect", row["ID"]).stdout)[0]["Config"]["User"] == "dyimages"
            continue
        top = stack.docker("top", row["ID"], "-eo", "uid,pid,args").stdout.splitlines()[1:]
        assert top, f"{row['Service']} has no processes"
        for line in top:
            assert line.split()[0] != "0", f"{row['Service']} runs as root: {line}"


@pytest.mark.timeout(600)
def test_prometheus_scrapes_every_service_under_the_monitoring_profile(stack: Stack) -> None:
    """Prometheus is Debian's package in a stand-in image; Grafana's image cannot be had (not started).
    No page has been viewed yet: the app serves /metrics from its start."""
    stack.compose("--profile", "monitoring", "up", "-d", "--no-deps", "--wait", "prometheus")
    _wait_scraped(stack, {"downloader", "indexer", "embedding", "rabbitmq", "app", "api"})
    stack.compose("--profile", "monitoring", "rm", "--stop", "--force", "prometheus")


@pytest.mark.timeout(900)
def test_urls_added_while_running_are_downloaded_and_indexed(stack: Stack) -> None:
    with (REPO / "downloader" / "image_urls.txt").open("a") as urls:
        urls.write("".join(f"{_photo_url(name)}\n" for name in PHOTOS))
    deadline = time.monotonic() + 600
    while (indexed := stack.metric("indexer", 9100, "dyimages_indexer_indexed_total")) < len(PHOTOS):
        if time.monotonic() > deadline:
            pytest.fail(f"indexed {indexed} of {len(PHOTOS)}\n{stack.compose('logs', '--tail=40').stdout}")
        time.sleep(3)


def test_the_cli_in_the_app_container_finds_the_photo_first(stack: Stack) -> None:
    stack.compose("stop", "indexer")  # the embedded store: one process at a time
    found = stack.search_image("coffee")
    assert found["results"], found
    assert found["results"][0]["url"] == _photo_url("coffee")
    assert len(found["results"]) == len(PHOTOS)
    REPORT["indexed"] = len(found["results"])


def test_a_setting_in_env_takes_effect_and_every_documented_one_reaches_its_service(stack: Stack) -> None:
    """APP_TOP_K=3 in .env: the recreated app's search shows 3 results by default (6 are indexed);
    and the real compose CLI renders every setting of .env.example into the services that read it
    (tests/test_settings_reach.py, here with `docker compose config` itself)."""
    env_file = REPO / ".env"
    written = env_file.read_text()
    env_file.write_text(written + "\nAPP_TOP_K=3\n")
    try:
        stack.compose("up", "-d", "--no-deps", "app")
        stack.wait_healthy(("app",))
        stack.compose("cp", str(stack.photos / "coffee.jpg"), "app:/tmp/coffee.jpg")
        found = json.loads(stack.exec("app", "dyimages", "search", "--image", "/tmp/coffee.jpg", "--json").stdout)
    finally:
        env_file.write_text(written)
        stack.compose("up", "-d", "--no-deps", "app")
        stack.wait_healthy(("app",))
    assert found["query"]["top_k"] == 3
    assert len(found["results"]) == 3
    reach = subprocess.run(
        [os.environ.get("SMOKE_PYTHON", "python3"), "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         str(REPO / "tests" / "test_settings_reach.py"), "-k", "reaches"],
        cwd=REPO, env={**stack.env, "DYIMAGES_COMPOSE_REQUIRED": "1"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert reach.returncode == 0, reach.stdout[-3000:]
    assert "rendered by docker compose config" in reach.stdout
    REPORT["app_top_k_from_env"] = len(found["results"])


@pytest.mark.browser
def test_the_ui_on_the_published_port_renders_results_in_chromium(stack: Stack) -> None:
    import urllib.request

    with urllib.request.urlopen(f"{APP_URL}/_stcore/health", timeout=10) as response:
        assert response.status == 200
    with chromium() as driver:
        search_in_browser(driver, APP_URL, "a cup of coffee", expected_results=len(PHOTOS), timeout=120)
        shown = result_images(driver)
    assert len(shown) == len(PHOTOS)
    assert all(image["width"] > 0 for image in shown)


def _indexed_more(stack: Stack, what: str, messages: int = 1) -> None:
    """Start the indexer (the app lets go of the embedded store first), wait until it has indexed
    ``messages`` more, stop it again."""
    stack.compose("restart", "app")
    stack.compose("start", "indexer")
    stack.wait_healthy(("indexer", "app"))
    deadline = time.monotonic() + 300
    while stack.metric("indexer", 9100, "dyimages_indexer_indexed_total") < messages:
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not indexed\n{stack.compose('logs', '--tail=40', 'downloader', 'indexer').stdout}")
        time.sleep(2)
    stack.compose("stop", "indexer")


@pytest.mark.browser
@pytest.mark.timeout(1200)
def test_a_photo_in_the_photo_folder_is_found_in_chromium_where_it_lies(stack: Stack) -> None:
    """README "Search your photo folder": a photo put in ./photos (PHOTOS_DIR's default, mounted read-only
    in the downloader, the embedding service and the app) is indexed where it lies and shown in Chromium
    under its path; the containers cannot write the folder. A copy of a downloaded photo beside it adds a
    source to that photo's point, not a point. The new photo is then deleted and its point goes, so the
    later steps find the index as it was (the copy stays: a folder that looks empty is held, never
    emptied, as an unmounted share would look)."""
    folder = REPO / "photos" / "2024"
    folder.mkdir(mode=0o755, parents=True, exist_ok=True)
    for made in (folder.parent, folder):
        made.chmod(0o755)
    photo = folder / "IMG_0001.jpg"
    # A photo of its own (the camera mirrored): a copy of a downloaded one would be the same point.
    with Image.open(stack.photos / "camera.jpg") as downloaded:
        downloaded.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photo, "JPEG", quality=90)
    photo.chmod(0o644)
    copy = folder / "IMG_0002.jpg"
    shutil.copyfile(stack.photos / "coffee.jpg", copy)
    copy.chmod(0o644)
    for service in ("downloader", "embedding", "app"):
        refused = stack.exec(service, "touch", "/data/photos/written-by-a-container", check=False)
        assert refused.returncode != 0, f"{service} could write the photo folder"
    _indexed_more(stack, "the two photos in the folder", messages=2)
    with chromium() as driver:
        search_in_browser(driver, APP_URL, "a camera", expected_results=len(PHOTOS) + 1, timeout=120)
        shown = result_images(driver)
    assert any(image["alt"].endswith(": 2024/IMG_0001.jpg") and image["width"] > 0 for image in shown), shown
    photo.unlink()
    _indexed_more(stack, "the photo's deletion")
    stack.compose("restart", "app")


@pytest.mark.timeout(1200)
def test_restarts_and_a_down_up_cycle_lose_nothing(stack: Stack) -> None:
    files_before = stack.exec("downloader", "find", "/data/images", "-type", "f").stdout.split()
    assert any(path.endswith("downloader.sqlite3") for path in files_before), "downloader state in the volume"
    stack.exec("embedding", "sh", "-c", "echo kept > /models/smoke-marker")  # writable by uid 10001
    stack.compose("restart", "app")  # lets go of the store the page opened
    stack.compose("start", "indexer")
    stack.wait_healthy(("indexer",))
    stack.compose("restart", "indexer")
    stack.wait_healthy(("indexer",))
    stack.compose("down")
    started = time.monotonic()
    stack.up()  # the export job finds the bundle whole and exits 0 at once
    REPORT["second_up_seconds"] = round(time.monotonic() - started)
    assert stack.exec("embedding", "cat", "/models/smoke-marker").stdout.strip() == "kept", "model-cache volume"
    files_after = stack.exec("downloader", "find", "/data/images", "-type", "f").stdout.split()
    assert sorted(files_after) == sorted(files_before), "images and downloader state kept"
    stack.compose("stop", "indexer")
    found = stack.search_image("rocket")
    assert found["results"][0]["url"] == _photo_url("rocket")
    assert len(found["results"]) == len(PHOTOS), "the index kept every image"
    # The README's address for programs: the API behind the ui pass-through, on the published port (the
    # API now holds the embedded store; the next step's `down` lets go of it).
    import httpx

    answer = httpx.get(f"{APP_URL}/api/v1/search", params={"q": "a rocket"}, timeout=60)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == len(PHOTOS), answer.text


@pytest.mark.timeout(900)
def test_the_public_profile_serves_the_ui_only_through_the_proxy_with_the_password(stack: Stack) -> None:
    """docs/going-public.md, as a user does it: `docker compose down`, then
    `docker compose --profile public up` with the .env init-env wrote (COMPOSE_PROFILES=direct, which
    the flag replaces), plus this smoke's override; nginx is Debian's package in a stand-in image."""
    import httpx

    with (REPO / ".env").open("a") as out:  # ports 80/443 may be taken on a test machine
        out.write(f"\nPROXY_PUBLISH_HTTP=127.0.0.1:{PROXY_PORT}\nPROXY_PUBLISH_HTTPS=127.0.0.1:18443\n")
        # No certificate here: the UI on plain HTTP, as docs/going-public.md allows for a LAN
        # (tests/proxy/ check HTTPS with the same entrypoint).
        out.write("PROXY_ALLOW_PLAIN_HTTP=true\n")
    stack.compose("down")
    # The app and the proxy only: the indexer stays stopped (the embedded store admits one process).
    stack.compose("--profile", "public", "up", "-d", "app", "proxy", timeout=900)
    stack.wait_healthy(("proxy", "app", "api", "redis", "embedding", "rabbitmq"))
    rows = {row["Service"]: row for row in stack.containers()}
    assert "ui" not in rows, "the direct pass-through is off under --profile public"
    published = stack.published()
    assert published["proxy"] == {PROXY_PORT, 18443}
    assert all(8501 not in ports for ports in published.values()), published
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{APP_URL}/_stcore/health", timeout=5)
    proxy = json.loads(stack.docker("inspect", rows["proxy"]["ID"]).stdout)[0]
    assert proxy["Config"]["User"] == "101:101"
    assert proxy["HostConfig"]["ReadonlyRootfs"]
    top = stack.docker("top", rows["proxy"]["ID"], "-eo", "uid,pid,args").stdout.splitlines()[1:]
    assert top, "the proxy has no processes"
    assert all(line.split()[0] == "101" for line in top), top

    user, password = "dyimages", _env_value("PROXY_PASSWORD")  # PROXY_USER's default
    assert len(password) >= 12, "./scripts/init-env wrote the proxy password"
    refused = httpx.get(f"{PROXY_URL}/", timeout=10)
    assert refused.status_code == 401
    assert httpx.get(f"{PROXY_URL}/", auth=(user, "wrong-password-123"), timeout=10).status_code == 401
    page = httpx.get(f"{PROXY_URL}/", auth=(user, password), timeout=10)
    assert page.status_code == 200
    assert "<title>Streamlit</title>" in page.text

    # The API under /api/ with the same password; then restarted, as the embedded store admits one
    # process and the UI's app opens it next (with a Qdrant server both keep it open).
    assert httpx.get(f"{PROXY_URL}/api/v1/search", params={"q": "coffee"}, timeout=10).status_code == 401
    answer = httpx.get(f"{PROXY_URL}/api/v1/search", params={"q": "coffee"}, auth=(user, password), timeout=60)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["results"]) == len(PHOTOS), answer.text
    stack.compose("restart", "api")
    stack.wait_healthy(("api",))

    # The UI over the proxy's websocket; the same search twice, so the second finds its query vector in Redis.
    hits_before = _cache_lookups(stack, "hit")
    with chromium() as driver:
        for _ in range(2):
            search_in_browser(
                driver, f"http://{user}:{password}@127.0.0.1:{PROXY_PORT}/", "a cup of coffee", len(PHOTOS), 120
            )
            shown = result_images(driver)
            assert len(shown) == len(PHOTOS)
            assert all(image["width"] > 0 for image in shown)
    hits_after = _cache_lookups(stack, "hit")
    assert hits_after >= hits_before + 1, (hits_before, hits_after)
    assert _cache_lookups(stack, "unavailable") == 0, "the app reached the redis service"
    keys = stack.exec("redis", "redis-cli", "--scan", "--pattern", "dyimages:query:*").stdout.split()
    assert keys, "the query cache's keys are in the redis service"
    REPORT["public"] = {
        "proxy": "401 without password, 200 with; app port unpublished",
        "api_results": len(answer.json()["results"]),
        "cache_hits": hits_after,
    }


@pytest.mark.timeout(2400)
def test_the_ray_variant_serves_the_same_index_with_two_worker_containers(stack: Stack) -> None:
    """``docker-compose.ray.yml``: the ``embedding`` service is the Ray head (the Serve proxy on the same
    URL), two ``ray-worker`` containers run the replicas. The index the LitServe tier built is searched
    through it and the photo comes first (the same model, the same vector). Two indexers cannot share
    the embedded store (one process at a time; no Qdrant server image here), so ``--scale indexer=2``
    is checked in compose's own rendering only: nothing that scales has a container name or a port."""
    files = ("docker-compose.yml", str(OVERRIDE), "docker-compose.ray.yml", str(RAY_OVERRIDE))
    scaled = json.loads(stack.compose("config", "--format", "json", files=files).stdout)["services"]
    for name in ("indexer", "ray-worker"):
        assert "container_name" not in scaled[name], name
        assert not scaled[name].get("ports"), name
    stack.compose("down")
    stack.compose("build", "embedding", "ray-worker", files=files, timeout=3600)
    stack.compose("up", "-d", "--scale", "ray-worker=2", "embedding", "ray-worker", "app", files=files, timeout=1200)
    stack.wait_healthy(("embedding", "app"), timeout=900)
    workers = [row for row in stack.containers() if row["Service"] == "ray-worker" and row["State"] == "running"]
    assert len(workers) == 2, workers
    fetch = "import urllib.request as u; print(u.urlopen('http://embedding:8000/info', timeout=10).read().decode())"
    assert json.loads(stack.exec("app", "python", "-c", fetch).stdout)["dim"] > 0
    found = stack.search_image("rocket")  # the query vector comes from a replica on a worker container
    assert found["results"][0]["url"] == _photo_url("rocket")
    REPORT["ray"] = {"workers": len(workers), "first": found["results"][0]["url"]}
    stack.compose("down", files=files)
