# shellcheck shell=bash
# A private Docker engine for the container smoke (scripts/test-containers), from Debian packages only:
# Debian 12's containerd, runc, tini and debootstrap through apt, and Debian 13's dockerd, CLI, BuildKit
# (buildx) and Compose v2, which need only libc6 >= 2.34, fetched with `apt-get download` through a
# private apt configuration and unpacked with `dpkg -x` (nothing of Debian 13 gets installed).
# The engine changes no firewall, NAT or forwarding settings: containers reach each other and ports
# published on 127.0.0.1, nothing else. Needs root (dockerd, apt).
# Usage: source it, set SMOKE_DIR, then engine_install; engine_start; ...; engine_stop.

: "${SMOKE_DIR:?set SMOKE_DIR to the scratch folder of the smoke}"
ENGINE_ROOT=$SMOKE_DIR/engine          # unpacked Debian 13 packages
ENGINE_DATA=$SMOKE_DIR/data            # the engine's data root: images, volumes, build cache
ENGINE_STARTED=""                      # set when this script started the engine (and so stops it)

engine_log() { printf '[engine] %s\n' "$*" >&2; }

# Is an engine with BuildKit and Compose v2 already answering on DOCKER_HOST (or the default socket)?
engine_running() {
  command -v docker >/dev/null && docker info >/dev/null 2>&1 \
    && docker compose version >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1
}

engine_install() {
  local apt_dir=$SMOKE_DIR/apt
  if [ -x "$ENGINE_ROOT/usr/sbin/dockerd" ] && [ -x "$ENGINE_ROOT/usr/bin/docker" ] && command -v iptables >/dev/null; then
    return 0
  fi
  engine_log "installing containerd, runc, tini, debootstrap (Debian 12) with apt"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # iptables: only for the DNS rules dockerd sets inside each container (its own network namespace);
  # with --iptables=false the host rules stay untouched.
  apt-get install -y -qq --no-install-recommends containerd runc tini debootstrap iproute2 iptables >/dev/null
  engine_log "fetching dockerd, docker CLI, buildx and compose (Debian 13) into $ENGINE_ROOT"
  mkdir -p "$apt_dir"/{parts,lists/partial,cache/archives/partial,debs}
  # The system's first deb822 stanza (its mirror and key), with the suite changed to trixie.
  sed -n '1,/^$/p' /etc/apt/sources.list.d/debian.sources | sed 's/^Suites:.*/Suites: trixie/' \
    > "$apt_dir/parts/trixie.sources"
  local private=(-o Dir::Etc::SourceList=/dev/null -o "Dir::Etc::SourceParts=$apt_dir/parts"
                 -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache" -o APT::Sandbox::User=root)
  apt-get "${private[@]}" update -qq
  (cd "$apt_dir/debs" && apt-get "${private[@]}" download -qq docker.io docker-cli docker-buildx docker-compose)
  local deb
  for deb in "$apt_dir"/debs/*.deb; do dpkg -x "$deb" "$ENGINE_ROOT"; done
  rm -rf "$apt_dir"
}

# Point the CLI at our binaries and socket (also when the engine was started by an earlier run).
engine_env() {
  export PATH=$ENGINE_ROOT/usr/bin:$ENGINE_ROOT/usr/sbin:$PATH
  export DOCKER_HOST=unix://$SMOKE_DIR/docker.sock
  export DOCKER_CONFIG=$SMOKE_DIR/docker-config
  mkdir -p "$DOCKER_CONFIG/cli-plugins"
  ln -sf "$ENGINE_ROOT"/usr/libexec/docker/cli-plugins/docker-{buildx,compose} "$DOCKER_CONFIG/cli-plugins/"
}

engine_start() {
  engine_env
  if docker info >/dev/null 2>&1; then engine_log "our engine is already running"; return 0; fi
  engine_log "starting dockerd (data root $ENGINE_DATA; no iptables, NAT or IP forwarding)"
  mkdir -p "$ENGINE_DATA"
  setsid "$ENGINE_ROOT/usr/sbin/dockerd" --host "$DOCKER_HOST" --data-root "$ENGINE_DATA" \
    --exec-root "$SMOKE_DIR/exec" --pidfile "$SMOKE_DIR/dockerd.pid" --storage-driver=overlay2 \
    --iptables=false --ip6tables=false --ip-masq=false --ip-forward=false \
    --bridge=none --init-path=/usr/bin/tini-static --userland-proxy-path="$ENGINE_ROOT/usr/sbin/docker-proxy" \
    >"$SMOKE_DIR/dockerd.log" 2>&1 </dev/null &
  ENGINE_STARTED=1
  local _
  for _ in $(seq 120); do docker info >/dev/null 2>&1 && return 0; sleep 0.5; done
  tail -20 "$SMOKE_DIR/dockerd.log" >&2
  engine_log "dockerd did not start"; return 1
}

engine_stop() {
  local pid
  pid=$(cat "$SMOKE_DIR/dockerd.pid" 2>/dev/null) || return 0
  engine_log "stopping dockerd ($pid)"
  kill -TERM "$pid" 2>/dev/null || true     # dockerd stops its containers and its containerd
  local _
  for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  rm -f "$SMOKE_DIR/dockerd.pid"
  # dockerd leaves its data root bind-mounted on itself (and any mount it lost track of): unmount, deepest first.
  awk -v dir="$SMOKE_DIR" 'index($2, dir) == 1 {print $2}' /proc/mounts | sort -r | while read -r mount; do
    umount "$mount" 2>/dev/null || umount -l "$mount" || true
  done
}
