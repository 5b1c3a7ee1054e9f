# shellcheck shell=bash
# Local stand-ins for the images the stack names but this machine cannot pull (no container registry
# is reachable here), made from Debian packages and the uv wheel and tagged only inside the smoke's
# private engine. Each is built only when its tag is missing and cannot be pulled.
# Adding one: a `standin_<name>` function that calls `standin_from_python TAG PACKAGES SETUP`, and its
# line in standin_images.
# Needs: engine_env (docker), debootstrap, SMOKE_PYTHON (a Python with pip, for the uv wheel), SMOKE_DIR.

PYTHON_STANDIN=python:3.13.15-slim-trixie       # the tags the Dockerfile and docker-compose.yml name
UV_STANDIN=ghcr.io/astral-sh/uv:0.13.8
RABBITMQ_STANDIN=rabbitmq:3.13.7-management-alpine
PROMETHEUS_STANDIN=prom/prometheus:v3.13.2
REDIS_STANDIN=redis:7.4.6-alpine
NGINX_STANDIN=nginx:1.28.0

standin_log() { printf '[stand-in] %s\n' "$*" >&2; }

# True when the image is there or can be pulled (then no stand-in is made).
image_available() {
  docker image inspect "$1" >/dev/null 2>&1 || timeout 60 docker pull -q "$1" >/dev/null 2>&1
}

debian_mirror() { awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources; }

# The Debian release and Python of the python image the Dockerfile names: Debian 13 (trixie), Python 3.13.
STANDIN_SUITE=trixie
STANDIN_PYTHON=python3.13

# Debian's Python in a minimal debootstrap root, laid out like the python image (python3, python and pip
# in /usr/local/bin). The other stand-ins build on it, so they too are Debian 13's packages.
standin_python() {
  local root=$SMOKE_DIR/rootfs
  rm -rf "$root"
  standin_log "$PYTHON_STANDIN <- debootstrap $STANDIN_SUITE $STANDIN_PYTHON (about a minute)"
  # passwd (useradd, as in the python image): Debian 13's minimal set no longer carries it for sure.
  debootstrap --variant=minbase --include="$STANDIN_PYTHON,$STANDIN_PYTHON-venv,python3-pip,ca-certificates,passwd" \
    "$STANDIN_SUITE" "$root" "$(debian_mirror)" >"$SMOKE_DIR/debootstrap.log"
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* \
    "$root"/usr/share/man/* "$root/usr/lib/$STANDIN_PYTHON/EXTERNALLY-MANAGED"
  ln -sf "/usr/bin/$STANDIN_PYTHON" "$root/usr/local/bin/python3"
  ln -sf "/usr/bin/$STANDIN_PYTHON" "$root/usr/local/bin/python"
  ln -sf /usr/bin/pip3 "$root/usr/local/bin/pip"
  : >"$root/etc/resolv.conf"
  # Keep services from starting inside image builds (Debian's convention).
  printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d" && chmod 755 "$root/usr/sbin/policy-rc.d"
  tar --numeric-owner -C "$root" -c . | docker import \
    -c 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' -c 'ENV LANG=C.UTF-8' \
    -c 'CMD ["python3"]' - "$PYTHON_STANDIN" >/dev/null
  rm -rf "$root"
}

# The static uv binary from the uv wheel (musllinux), at /uv like the uv image.
standin_uv() {
  local dir=$SMOKE_DIR/uv version=${UV_STANDIN##*:}
  rm -rf "$dir" && mkdir -p "$dir/img"
  standin_log "$UV_STANDIN <- the uv $version wheel"
  "${SMOKE_PYTHON:-python3}" -m pip download -q --no-deps --only-binary=:all: --platform musllinux_1_1_x86_64 \
    --python-version 3.11 -d "$dir" "uv==$version"
  "${SMOKE_PYTHON:-python3}" -m zipfile -e "$dir"/uv-"$version"-*.whl "$dir/x"
  install -m755 "$dir/x/uv-$version.data/scripts/uv" "$dir/x/uv-$version.data/scripts/uvx" "$dir/img/"
  tar --owner=0 --group=0 -C "$dir/img" -c . | docker import -c 'ENTRYPOINT ["/uv"]' - "$UV_STANDIN" >/dev/null
  rm -rf "$dir"
}

# TAG PACKAGES SETUP: the python stand-in plus Debian PACKAGES, then the Dockerfile lines in SETUP.
standin_from_python() {
  local tag=$1 packages=$2 setup=$3 dir
  standin_log "$tag <- Debian's $packages"
  dir=$(mktemp -d "$SMOKE_DIR/standin.XXXX")
  {
    echo "FROM $PYTHON_STANDIN"
    echo "RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends $packages >/dev/null \\"
    echo "    && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/*"
    printf '%s\n' "$setup"
  } >"$dir/Dockerfile"
  [ -f "$SMOKE_DIR/entrypoint.sh" ] && mv "$SMOKE_DIR/entrypoint.sh" "$dir/"
  docker build -q --network host -t "$tag" "$dir" >/dev/null
  rm -rf "$dir"
}

# RabbitMQ with the management and Prometheus plugins (as the official image); honours RABBITMQ_DEFAULT_USER/PASS like the official image and
# answers the compose healthcheck (rabbitmq-diagnostics -q ping) as its own user.
standin_rabbitmq() {
  cat >"$SMOKE_DIR/entrypoint.sh" <<'SH'
#!/bin/sh
set -e
conf=/var/lib/rabbitmq/rabbitmq.conf
{
  echo "loopback_users = none"
  [ -n "$RABBITMQ_DEFAULT_USER" ] && echo "default_user = $RABBITMQ_DEFAULT_USER"
  [ -n "$RABBITMQ_DEFAULT_PASS" ] && echo "default_pass = $RABBITMQ_DEFAULT_PASS"
} > "$conf"
exec rabbitmq-server
SH
  standin_from_python "$RABBITMQ_STANDIN" "rabbitmq-server" "$(cat <<'DF'
RUN rabbitmq-plugins enable --offline rabbitmq_management rabbitmq_prometheus >/dev/null \
    && mkdir -p /var/lib/rabbitmq && chown -R rabbitmq:rabbitmq /var/lib/rabbitmq /etc/rabbitmq
COPY --chmod=755 entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV HOME=/var/lib/rabbitmq RABBITMQ_CONFIG_FILE=/var/lib/rabbitmq/rabbitmq
USER rabbitmq
EXPOSE 5672 15672 15692
CMD ["/usr/local/bin/docker-entrypoint.sh"]
DF
)"
}

# Prometheus laid out like prom/prometheus (config in /etc/prometheus, data in /prometheus, user
# nobody); wget for the compose healthcheck.
standin_prometheus() {
  standin_from_python "$PROMETHEUS_STANDIN" "prometheus wget" "$(cat <<'DF'
RUN mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DF
)"
}

# Redis laid out like the official image (data in /data, the redis user; compose gives the command).
standin_redis() {
  standin_from_python "$REDIS_STANDIN" "redis-server redis-tools" "$(cat <<'DF'
RUN mkdir -p /data && chown redis:redis /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server"]
DF
)"
}

# nginx for the reverse proxy (profile `public`): Debian's nginx (the binary tests/proxy uses), gettext-base
# for the envsubst of deploy/proxy/entrypoint.sh (which also needs perl-base's crypt(), coreutils and
# bash for the compose healthcheck, all in the python stand-in). The nginx user is uid/gid 101 as in the
# official image; the entrypoint writes only under /tmp (a tmpfs in compose; the root fs is read-only).
standin_nginx() {
  standin_from_python "$NGINX_STANDIN" "nginx gettext-base" "$(cat <<'DF'
RUN groupadd -r -g 101 nginx && useradd -r -u 101 -g 101 -d /nonexistent -s /usr/sbin/nologin nginx
EXPOSE 8080
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]
DF
)"
}

# Every stand-in the smoke may need; the python stand-in first (the others build on it).
standin_images() {
  image_available "$PYTHON_STANDIN" || standin_python
  image_available "$UV_STANDIN" || standin_uv
  image_available "$RABBITMQ_STANDIN" || standin_rabbitmq
  image_available "$PROMETHEUS_STANDIN" || standin_prometheus
  image_available "$REDIS_STANDIN" || standin_redis
  image_available "$NGINX_STANDIN" || standin_nginx
}
