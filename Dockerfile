# syntax=docker/dockerfile:1.7
# Every service image of DY Images, built from the repository root (the uv workspace) by one pipeline of
# stages that the workspace member picks (MEMBER), one small target per service on top:
#   docker build --build-arg MEMBER=app --target app .      (compose: build.target and build.args)
# A service's venv installs the member's locked third-party dependencies first (a layer cached until
# uv.lock changes), then `common` and the member itself (a small layer of its own in the image), on a
# slim image that runs as uid 10001. EXTRAS (space-separated) adds the member's optional dependencies:
# the embedding service serves on ONNX Runtime without PyTorch; EXTRAS=torch is its export job and GPU image.
# Adding a member: its pyproject.toml line below, a target at the end, a service in docker-compose.yml.
# Debian 13 and its Python, 3.13: the newest the workspace's requires-python admits (3.11 to 3.13).
ARG PYTHON_IMAGE=python:3.13.15-slim-trixie
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# The workspace's metadata: uv checks the whole workspace against the lock file.
FROM ${PYTHON_IMAGE} AS workspace
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PYTHON=/usr/local/bin/python3 \
    UV_PROJECT_ENVIRONMENT=/app/.venv
# `uv-sync`: uv sync of dyimages-$MEMBER (with its EXTRAS) from the lock. A build behind a
# TLS-intercepting proxy passes its CA bundle as the optional secret `ca_bundle` (docker build --secret
# id=ca_bundle,src=...); it is used for that step only and never stored in an image. The third-party
# step lists what it installed; the workspace step copies only what it added or changed to /layer, so
# an image's code is a small layer of its own and a code change does not re-ship the dependencies.
RUN printf '%s\n' '#!/bin/sh' 'set -e' \
      ': "${MEMBER:?build with --build-arg MEMBER=<workspace member>, e.g. app (compose sets it)}"' \
      '[ -f /run/secrets/ca_bundle ] && export SSL_CERT_FILE=/run/secrets/ca_bundle' \
      'extras=$(for extra in $EXTRAS; do printf -- "--extra %s " "$extra"; done)' \
      'uv sync --frozen --no-dev --package "dyimages-$MEMBER" $extras "$@"' \
      'case " $* " in' \
      '  *" --no-install-workspace "*) find /app/.venv ! -type d | sort > /tmp/third-party; touch /tmp/third-party ;;' \
      '  *) { find /app/.venv ! -type d | sort | comm -13 /tmp/third-party -; find /app/.venv -newer /tmp/third-party ! -type d; } \' \
      '       | sort -u | sed "s|^/||" | tar -C / --no-recursion -cf - -T - | tar -C /layer -xf - ;;' \
      'esac' > /usr/local/bin/uv-sync \
    && chmod 755 /usr/local/bin/uv-sync && mkdir /layer
WORKDIR /src
COPY pyproject.toml uv.lock ./
COPY common/pyproject.toml common/
COPY downloader/pyproject.toml downloader/
COPY indexer/pyproject.toml indexer/
COPY embedding/pyproject.toml embedding/
COPY app/pyproject.toml app/

# What every service image shares: Python, the non-root user and the folders services write, owned by
# that user (a fresh named volume takes the owner of the folder it is mounted on).
FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 dyimages \
    && useradd --system --uid 10001 --gid dyimages --no-create-home dyimages \
    && mkdir -p /data/images /data/urls /data/qdrant /models \
    && chown dyimages:dyimages /data/images /data/urls /data/qdrant /models
ENV PATH=/app/.venv/bin:$PATH PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
USER dyimages
WORKDIR /app

# One service's venv: the member's locked third-party dependencies, then common and the member itself.
FROM workspace AS deps
ARG MEMBER
ARG EXTRAS=""
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-install-workspace
FROM deps AS venv
ARG MEMBER
ARG EXTRAS=""
COPY common common
COPY ${MEMBER} ${MEMBER}
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-editable

# The runtime plus the venv: the third-party layer, then the code layer.
FROM runtime AS service
COPY --from=deps /app/.venv /app/.venv
COPY --from=venv /layer/ /

FROM service AS downloader
EXPOSE 9100
CMD ["python", "-m", "downloader"]

FROM service AS indexer
EXPOSE 9100
CMD ["python", "-m", "indexer"]

FROM service AS app
EXPOSE 8501
CMD ["python", "-m", "search_app"]

# The ONNX bundle (and, with EXTRAS=torch, the OpenCLIP weights) live in MODEL_CACHE_DIR, the
# model-cache volume; compose's embedding-export job writes the bundle there before the service starts.
FROM service AS embedding
ENV MODEL_CACHE_DIR=/models HF_HOME=/models/hf
EXPOSE 8000
CMD ["python", "-m", "embedding"]
