#!/bin/sh
# The reverse proxy in front of the UI (compose profile `public`): checks its settings, hashes
# PROXY_PASSWORD into an htpasswd file, renders nginx.conf.template (render.sh), runs nginx, and
# renders again and reloads nginx when the certificate files appear or change (a renewal).
# Runs as a non-root user (compose: the image's nginx user) and writes only under PROXY_RUN_DIR.
#
#   PROXY_USER / PROXY_PASSWORD   the one login (required; placeholders and < 12 characters refused)
#   PROXY_UPSTREAM                the app, host:port (compose: app:8501)
#   MAX_IMAGE_BYTES               largest upload the app accepts; the proxy refuses bigger bodies (413)
#   PROXY_REQUEST_RATE / _BURST   every request per client (pages, thumbnails, static files)
#   PROXY_SESSION_RATE / _BURST   new UI sessions (websocket connections) per client
#   PROXY_MAX_SESSIONS            open UI sessions per client at once
#   PROXY_UPLOAD_RATE / _BURST    image uploads ("search by image") per client
#   PROXY_API_UPSTREAM            the HTTP API, host:port (compose: api:8502); empty: no /api/
#   PROXY_API_RATE / _BURST       API requests per client
#   API_TOKEN                     a bearer token that stands in for the password on /api/ (empty: none)
#   PROXY_TLS_CERT / PROXY_TLS_KEY  PEM files: HTTPS on PROXY_HTTPS_PORT, HTTP redirects there; until
#                                 both are readable, HTTP serves ACME challenges and says HTTPS is not ready
#   PROXY_TLS_CHECK_S             how often the certificate files are checked for a change (seconds)
#   PROXY_PUBLIC_HTTPS_PORT       the HTTPS port browsers use (the redirect's; default 443)
#   PROXY_ALLOW_PLAIN_HTTP        true: serve the UI, password included, on plain HTTP (no certificate)
#   PROXY_ACME_DIR                webroot of ACME HTTP-01 challenges (/.well-known/acme-challenge/)
#   PROXY_TRUSTED_PROXIES         CIDRs of a CDN or proxy in front, whose PROXY_REAL_IP_HEADER is believed
#   PROXY_REAL_IP_HEADER          the header carrying the client's address (X-Forwarded-For)
#   PROXY_DOMAIN                  the domain (server_name); default: any
#   PROXY_HTTP_PORT / PROXY_HTTPS_PORT  ports inside the container (8080 / 8443)
#   PROXY_RUN_DIR                 where the rendered config, the hash, caches and temp files go
#   PROXY_ACCESS_LOG              where requests are logged (default /dev/stdout; `off` for none)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "proxy: $*" >&2; exit 2; }
say() { echo "proxy: $*" >&2; }

[ "$(id -u)" != 0 ] || fail "refusing to run as root; run as an unprivileged user (compose sets user: 101:101)"

: "${PROXY_USER:=dyimages}"
: "${PROXY_PASSWORD:=}"
: "${PROXY_UPSTREAM:=app:8501}"
: "${MAX_IMAGE_BYTES:=52428800}"
: "${PROXY_REQUEST_RATE:=20r/s}"
: "${PROXY_REQUEST_BURST:=200}"
: "${PROXY_SESSION_RATE:=30r/m}"
: "${PROXY_SESSION_BURST:=10}"
: "${PROXY_MAX_SESSIONS:=10}"
: "${PROXY_UPLOAD_RATE:=10r/m}"
: "${PROXY_UPLOAD_BURST:=5}"
: "${PROXY_API_UPSTREAM:=}"
: "${PROXY_API_RATE:=5r/s}"
: "${PROXY_API_BURST:=20}"
: "${API_TOKEN:=}"
: "${PROXY_TLS_CERT:=}"
: "${PROXY_TLS_KEY:=}"
: "${PROXY_TLS_CHECK_S:=60}"
: "${PROXY_PUBLIC_HTTPS_PORT:=443}"
: "${PROXY_ALLOW_PLAIN_HTTP:=false}"
: "${PROXY_ACME_DIR:=$here/acme}"
: "${PROXY_TRUSTED_PROXIES:=}"
: "${PROXY_REAL_IP_HEADER:=X-Forwarded-For}"
: "${PROXY_DOMAIN:=_}"
: "${PROXY_HTTP_PORT:=8080}"
: "${PROXY_HTTPS_PORT:=8443}"
: "${PROXY_RUN_DIR:=/tmp/dyimages-proxy}"
: "${PROXY_ACCESS_LOG:=/dev/stdout}"

[ -n "$PROXY_PASSWORD" ] || fail "PROXY_PASSWORD is empty; set a real one in .env (./scripts/init-env makes one)"
lowered=$(printf '%s' "$PROXY_PASSWORD" | tr '[:upper:]' '[:lower:]')
case "$lowered" in
  *change*me* | *password* | *passwort* | *placeholder* | *example* | *secret* | *dyimages* | *admin*)
    fail "PROXY_PASSWORD looks like a placeholder; set a real one in .env (./scripts/init-env makes one)" ;;
esac
[ "${#PROXY_PASSWORD}" -ge 12 ] || fail "PROXY_PASSWORD is shorter than 12 characters"
case "$PROXY_USER" in
  "" | *:* | *" "*) fail "PROXY_USER must be a non-empty name without ':' or spaces" ;;
esac
for rate in "$PROXY_REQUEST_RATE" "$PROXY_SESSION_RATE" "$PROXY_UPLOAD_RATE" "$PROXY_API_RATE"; do
  echo "$rate" | grep -Eq '^[0-9]+r/[sm]$' || fail "rate '$rate' is not like 20r/s or 10r/m"
done
for number in "$MAX_IMAGE_BYTES" "$PROXY_REQUEST_BURST" "$PROXY_SESSION_BURST" "$PROXY_UPLOAD_BURST" \
  "$PROXY_API_BURST" "$PROXY_MAX_SESSIONS" "$PROXY_HTTP_PORT" "$PROXY_HTTPS_PORT" "$PROXY_PUBLIC_HTTPS_PORT" "$PROXY_TLS_CHECK_S"; do
  case "$number" in "" | *[!0-9]*) fail "'$number' is not a whole number" ;; esac
done
case "$PROXY_ALLOW_PLAIN_HTTP" in
  true | false) ;;
  *) fail "PROXY_ALLOW_PLAIN_HTTP must be true or false, not '$PROXY_ALLOW_PLAIN_HTTP'" ;;
esac
{ [ -n "$PROXY_TLS_CERT" ] && [ -z "$PROXY_TLS_KEY" ]; } || { [ -z "$PROXY_TLS_CERT" ] && [ -n "$PROXY_TLS_KEY" ]; } \
  && fail "set both PROXY_TLS_CERT and PROXY_TLS_KEY, or neither"
for cidr in $(echo "$PROXY_TRUSTED_PROXIES" | tr ',' ' '); do
  echo "$cidr" | grep -Eq '^[0-9A-Fa-f.:]+(/[0-9]{1,3})?$' || fail "PROXY_TRUSTED_PROXIES: '$cidr' is not an address or CIDR"
done
[ -z "$API_TOKEN" ] || echo "$API_TOKEN" | grep -Eq '^[A-Za-z0-9._~-]{24,}$' \
  || fail "API_TOKEN must be 24 or more letters, digits or ._~- (openssl rand -hex 24 makes one)"
echo "$PROXY_REAL_IP_HEADER" | grep -Eq '^[A-Za-z0-9-]+$' || fail "PROXY_REAL_IP_HEADER: '$PROXY_REAL_IP_HEADER' is not a header name"

umask 077
mkdir -p "$PROXY_RUN_DIR/tmp" "$PROXY_RUN_DIR/cache"

# SHA-512 crypt ($6$, 5000 rounds) with a random salt, through the C library's crypt(), which nginx
# also uses to check it. nginx checks the password on every request (each thumbnail too), so a
# deliberately slow hash (bcrypt) would slow every page; a long random password is what protects it.
salt=$(head -c 12 /dev/urandom | base64 | tr '+' '.' | tr -d '=\n' | cut -c1-16)
hash=$(PROXY_PASSWORD="$PROXY_PASSWORD" SALT="$salt" perl -e 'print crypt($ENV{PROXY_PASSWORD}, "\$6\$$ENV{SALT}\$")')
case "$hash" in '$6$'*) ;; *) fail "the C library cannot make a SHA-512 crypt hash" ;; esac
printf '%s:%s\n' "$PROXY_USER" "$hash" > "$PROXY_RUN_DIR/htpasswd"

# Client bodies: an upload is the image plus its multipart envelope (64 KiB allowed for it).
PROXY_MAX_BODY=$((MAX_IMAGE_BYTES + 65536))
PROXY_CONF_DIR=$here
PROXY_PAGES="$here/pages"
export PROXY_UPSTREAM PROXY_REQUEST_RATE PROXY_REQUEST_BURST PROXY_SESSION_RATE PROXY_SESSION_BURST \
  PROXY_MAX_SESSIONS PROXY_UPLOAD_RATE PROXY_UPLOAD_BURST PROXY_DOMAIN PROXY_RUN_DIR PROXY_MAX_BODY \
  PROXY_PAGES PROXY_ACCESS_LOG PROXY_CONF_DIR PROXY_ACME_DIR PROXY_API_UPSTREAM PROXY_API_RATE PROXY_API_BURST \
  API_TOKEN

# shellcheck source=render.sh
. "$here/render.sh"

# What the certificate files are now: "none" until both are readable, else their checksum.
tls_state() {
  if [ -n "$PROXY_TLS_CERT" ] && [ -r "$PROXY_TLS_CERT" ] && [ -r "$PROXY_TLS_KEY" ]; then
    cat "$PROXY_TLS_CERT" "$PROXY_TLS_KEY" | cksum
  else
    echo none
  fi
}

state=$(tls_state)
render "$state"
nginx -e stderr -p "$PROXY_RUN_DIR" -c "$PROXY_RUN_DIR/nginx.conf" -g 'daemon off;' "$@" &
nginx_pid=$!
# Stop signals go to nginx (QUIT: finish requests first); its exit status is the proxy's.
stopping="" sleeper=""
on_signal() {
  stopping=1
  kill "-$1" "$nginx_pid" 2>/dev/null || true
  [ -z "$sleeper" ] || kill "$sleeper" 2>/dev/null || true
}
trap 'on_signal QUIT' QUIT
trap 'on_signal TERM' TERM INT

while [ -z "$stopping" ] && kill -0 "$nginx_pid" 2>/dev/null; do
  sleep "$PROXY_TLS_CHECK_S" &
  sleeper=$!
  wait "$sleeper" 2>/dev/null || true
  sleeper=""
  [ -z "$stopping" ] && kill -0 "$nginx_pid" 2>/dev/null || break
  now=$(tls_state)
  [ "$now" != "$state" ] || continue
  render "$now"
  if nginx -e stderr -t -q -p "$PROXY_RUN_DIR" -c "$PROXY_RUN_DIR/nginx.conf"; then
    kill -HUP "$nginx_pid" && say "certificate files changed: nginx reloaded ($(mode_of "$now"))"
  else
    say "certificate files changed, but nginx refuses the new config; still serving the old one"
  fi
  state=$now
done
status=0
wait "$nginx_pid" || status=$?
exit "$status"
