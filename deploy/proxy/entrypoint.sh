#!/bin/sh
# The reverse proxy in front of the UI (compose profile `public`): renders nginx.conf.template
# with the settings below, hashes PROXY_PASSWORD into an htpasswd file, then becomes nginx.
# Runs as a non-root user (compose: the image's nginx user) and writes only under PROXY_RUN_DIR.
#
#   PROXY_USER / PROXY_PASSWORD   the one login (required; placeholders and < 12 characters refused)
#   PROXY_UPSTREAM                the app, host:port (compose: app:8501)
#   MAX_IMAGE_BYTES               largest upload the app accepts; the proxy refuses bigger bodies (413)
#   PROXY_REQUEST_RATE / _BURST   every request per client (pages, thumbnails, static files)
#   PROXY_SESSION_RATE / _BURST   new UI sessions (websocket connections) per client
#   PROXY_MAX_SESSIONS            open UI sessions per client at once
#   PROXY_UPLOAD_RATE / _BURST    image uploads ("search by image") per client
#   PROXY_TLS_CERT / PROXY_TLS_KEY  PEM files: serve HTTPS on PROXY_HTTPS_PORT, redirect HTTP to it
#   PROXY_DOMAIN                  the domain (server_name); default: any
#   PROXY_HTTP_PORT / PROXY_HTTPS_PORT  ports inside the container (8080 / 8443)
#   PROXY_ACCESS_LOG              where requests are logged (default /dev/stdout; `off` for none)
set -eu

here=$(cd "$(dirname "$0")" && pwd)
fail() { echo "proxy: $*" >&2; exit 2; }

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
: "${PROXY_TLS_CERT:=}"
: "${PROXY_TLS_KEY:=}"
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
for rate in "$PROXY_REQUEST_RATE" "$PROXY_SESSION_RATE" "$PROXY_UPLOAD_RATE"; do
  echo "$rate" | grep -Eq '^[0-9]+r/[sm]$' || fail "rate '$rate' is not like 20r/s or 10r/m"
done
for number in "$MAX_IMAGE_BYTES" "$PROXY_REQUEST_BURST" "$PROXY_SESSION_BURST" "$PROXY_UPLOAD_BURST" \
  "$PROXY_MAX_SESSIONS" "$PROXY_HTTP_PORT" "$PROXY_HTTPS_PORT"; do
  case "$number" in "" | *[!0-9]*) fail "'$number' is not a whole number" ;; esac
done

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

if [ -n "$PROXY_TLS_CERT" ] || [ -n "$PROXY_TLS_KEY" ]; then
  [ -r "$PROXY_TLS_CERT" ] && [ -r "$PROXY_TLS_KEY" ] || fail "PROXY_TLS_CERT and PROXY_TLS_KEY must both be readable files"
  PROXY_LISTEN="listen $PROXY_HTTPS_PORT ssl;
        ssl_certificate $PROXY_TLS_CERT;
        ssl_certificate_key $PROXY_TLS_KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:dy_tls:10m;
        add_header Strict-Transport-Security \"max-age=31536000\" always;"
  PROXY_REDIRECT_SERVER="server {
        listen $PROXY_HTTP_PORT;
        server_name $PROXY_DOMAIN;
        location = /healthz { access_log off; return 200 \"ok\\n\"; }
        location / { return 308 https://\$host:$PROXY_HTTPS_PORT\$request_uri; }
    }"
else
  PROXY_LISTEN="listen $PROXY_HTTP_PORT;"
  PROXY_REDIRECT_SERVER=""
fi

export PROXY_UPSTREAM PROXY_REQUEST_RATE PROXY_REQUEST_BURST PROXY_SESSION_RATE PROXY_SESSION_BURST \
  PROXY_MAX_SESSIONS PROXY_UPLOAD_RATE PROXY_UPLOAD_BURST PROXY_DOMAIN PROXY_RUN_DIR PROXY_MAX_BODY \
  PROXY_LISTEN PROXY_REDIRECT_SERVER PROXY_PAGES PROXY_ACCESS_LOG
PROXY_PAGES="$here/pages"
export PROXY_PAGES
# Only these variables: nginx's own $variables stay as they are.
envsubst '${PROXY_UPSTREAM} ${PROXY_REQUEST_RATE} ${PROXY_REQUEST_BURST} ${PROXY_SESSION_RATE} ${PROXY_SESSION_BURST}
  ${PROXY_MAX_SESSIONS} ${PROXY_UPLOAD_RATE} ${PROXY_UPLOAD_BURST} ${PROXY_DOMAIN} ${PROXY_RUN_DIR}
  ${PROXY_MAX_BODY} ${PROXY_LISTEN} ${PROXY_REDIRECT_SERVER} ${PROXY_PAGES} ${PROXY_ACCESS_LOG}' \
  < "$here/nginx.conf.template" > "$PROXY_RUN_DIR/nginx.conf"

echo "proxy: ${PROXY_TLS_CERT:+https on :$PROXY_HTTPS_PORT, }http on :$PROXY_HTTP_PORT -> $PROXY_UPSTREAM; user $PROXY_USER" >&2
exec nginx -e stderr -p "$PROXY_RUN_DIR" -c "$PROXY_RUN_DIR/nginx.conf" -g 'daemon off;' "$@"
