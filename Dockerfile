# syntax=docker/dockerfile:1.7
# Every service image of DY Images, one target each, built from the repository root (the uv workspace):
#   docker build --target app .          (compose: build.target)
# A service's venv installs the locked third-party dependencies first (a layer cached until uv.lock
# changes), then `common` and the member itself (a small layer of its own in the image), on a slim image
# that runs as uid 10001.
# Adding a member: one "<member>-deps", "<member>-venv", "<member>" block at the end, and its
# pyproject.toml line below.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.8

FROM ${UV_IMAGE} AS uv

# The workspace's metadata: uv checks the whole workspace against the lock file.
FROM ${PYTHON_IMAGE} AS workspace
COPY --from=uv /uv /bin/uv
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
# `uv-sync`: uv sync from the lock. A build behind a TLS-intercepting proxy passes its CA bundle as the
# optional secret `ca_bundle` (docker build --secret id=ca_bundle,src=...); it is used for that step
# only and never stored in an image. The third-party step lists what it installed; the workspace step
# copies only what it added or changed to /layer, so an image's code is a small layer of its own and a
# code change does not re-ship the dependencies (6 GB for embedding).
RUN printf '%s\n' '#!/bin/sh' 'set -e' \
      '[ -f /run/secrets/ca_bundle ] && export SSL_CERT_FILE=/run/secrets/ca_bundle' \
      'uv sync --frozen --no-dev "$@"' \
      'case " $* " in' \
      '  *" --no-install-workspace "*) find /app/.venv ! -type d | sort > /tmp/third-party; touch /tmp/third-party ;;' \
      '  *) { find /app/.venv ! -type d | sort | comm -13 /tmp/third-party -; find /app/.venv -newer /tmp/third-party ! -type d; } \' \
      '       | sort -u | sed "s|^/||" | tar -C / --no-recursion -cf - -T - | tar -C /layer -xf - ;;' \
      'esac' > /usr/local/bin/uv-sync \
    && chmod 755 /usr/local/bin/uv-sync && mkdir /layer
WORKDIR /src
COPY pyproject.toml uv.lock .python-version ./
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

FROM workspace AS downloader-deps
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-install-workspace --package dyimages-downloader
FROM downloader-deps AS downloader-venv
COPY common common
COPY downloader downloader
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-editable --package dyimages-downloader

FROM runtime AS downloader
COPY --from=downloader-deps /app/.venv /app/.venv
COPY --from=downloader-venv /layer/ /
EXPOSE 9100
CMD ["python", "-m", "downloader"]

FROM workspace AS indexer-deps
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-install-workspace --package dyimages-indexer
FROM indexer-deps AS indexer-venv
COPY common common
COPY indexer indexer
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-editable --package dyimages-indexer

FROM runtime AS indexer
COPY --from=indexer-deps /app/.venv /app/.venv
COPY --from=indexer-venv /layer/ /
EXPOSE 9100
CMD ["python", "-m", "indexer"]

FROM workspace AS embedding-deps
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-install-workspace --package dyimages-embedding
FROM embedding-deps AS embedding-venv
COPY common common
COPY embedding embedding
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-editable --package dyimages-embedding

FROM runtime AS embedding
COPY --from=embedding-deps /app/.venv /app/.venv
COPY --from=embedding-venv /layer/ /
# Weights download once into MODEL_CACHE_DIR (the model-cache volume) at first start; build with
# --build-arg BAKE_MODEL=true to download them into the image instead (no network at run time).
ARG BAKE_MODEL=false
ARG MODEL_NAME=ViT-B-32
ARG MODEL_PRETRAINED=laion2b_s34b_b79k
ENV MODEL_CACHE_DIR=/models HF_HOME=/models/hf MODEL_NAME=${MODEL_NAME} MODEL_PRETRAINED=${MODEL_PRETRAINED}
RUN if [ "$BAKE_MODEL" = "true" ]; then python -m embedding.weights; fi
EXPOSE 8000
CMD ["python", "-m", "embedding"]

FROM workspace AS app-deps
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-install-workspace --package dyimages-app
FROM app-deps AS app-venv
COPY common common
COPY app app
RUN --mount=type=cache,target=/root/.cache/uv --mount=type=secret,id=ca_bundle \
    uv-sync --no-editable --package dyimages-app

FROM runtime AS app
COPY --from=app-deps /app/.venv /app/.venv
COPY --from=app-venv /layer/ /
EXPOSE 8501
CMD ["python", "-m", "search_app"]
