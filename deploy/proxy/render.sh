# shellcheck shell=sh
# Renders nginx.conf (and the files it includes) under PROXY_RUN_DIR for one state of the certificate
# files (entrypoint.sh's tls_state: "none" or their checksum). Sourced by entrypoint.sh.
#   tls    a certificate: HTTPS serves the UI; HTTP serves ACME challenges and redirects the rest (308)
#   plain  none, PROXY_ALLOW_PLAIN_HTTP=true: HTTP serves the UI, password and all
#   wait   none: HTTP serves ACME challenges and a 503 page saying HTTPS is not set up yet

mode_of() {
  if [ "$1" != none ]; then echo tls
  elif [ "$PROXY_ALLOW_PLAIN_HTTP" = true ]; then echo plain
  else echo wait
  fi
}

# `listen` lines for a port: IPv6 too where the container has it (Docker turns IPv6 off in a container
# on a network without it, and nginx would not start listening on [::]).
listen_lines() {
  port=$1 extra=$2
  printf 'listen %s%s;' "$port" "$extra"
  if grep -q . /proc/net/if_inet6 2>/dev/null; then  # (a /proc file's size reads 0)
    printf '\n        listen [::]:%s%s;' "$port" "$extra"
  fi
}

real_ip_lines() {
  [ -n "$PROXY_TRUSTED_PROXIES" ] || return 0
  for cidr in $(echo "$PROXY_TRUSTED_PROXIES" | tr ',' ' '); do printf 'set_real_ip_from %s;\n    ' "$cidr"; done
  printf 'real_ip_header %s;\n    real_ip_recursive on;' "$PROXY_REAL_IP_HEADER"
}

# The API's upstream, rate zone and credentials (http level) and its location (api.conf, which ui.conf
# includes); both empty without PROXY_API_UPSTREAM. With API_TOKEN, "Authorization: Bearer API_TOKEN"
# needs no password, and every request reaches the API with that header; without, none is accepted
# and the API gets no credentials.
api_http() {
  PROXY_API_HTTP=""
  : > "$PROXY_RUN_DIR/api.conf"
  [ -n "$PROXY_API_UPSTREAM" ] || return 0
  token_line="" forward='""'
  if [ -n "$API_TOKEN" ]; then token_line="\"Bearer $API_TOKEN\" off;" forward="\"Bearer $API_TOKEN\""; fi
  PROXY_API_HTTP="upstream dy_api {
        server $PROXY_API_UPSTREAM;
        keepalive 8;
    }
    limit_req_zone \$binary_remote_addr zone=dy_api:10m rate=$PROXY_API_RATE;
    map \$http_authorization \$dy_api_realm {
        $token_line
        default \"DY Images\";
    }
    map \$http_authorization \$dy_api_authorization {
        default $forward;
    }"
  envsubst '${PROXY_CONF_DIR} ${PROXY_API_BURST} ${PROXY_MAX_BODY}' \
    < "$PROXY_CONF_DIR/api.conf.template" > "$PROXY_RUN_DIR/api.conf"
}

render() {
  PROXY_MODE=$(mode_of "$1")
  PROXY_LISTEN_HTTP=$(listen_lines "$PROXY_HTTP_PORT" "")
  PROXY_REAL_IP=$(real_ip_lines)
  PROXY_HTTPS_SERVER=""
  run=$PROXY_RUN_DIR
  api_http
  envsubst '${PROXY_RUN_DIR} ${PROXY_PAGES} ${PROXY_CONF_DIR} ${PROXY_SESSION_BURST} ${PROXY_MAX_SESSIONS}
    ${PROXY_UPLOAD_BURST} ${PROXY_MAX_BODY} ${PROXY_REQUEST_BURST}' \
    < "$PROXY_CONF_DIR/ui.conf.template" > "$run/ui.conf"
  case "$PROXY_MODE" in
    tls)
      suffix=""
      [ "$PROXY_PUBLIC_HTTPS_PORT" = 443 ] || suffix=":$PROXY_PUBLIC_HTTPS_PORT"
      printf 'location / {\n    return 308 https://$host%s$request_uri;\n}\n' "$suffix" > "$run/http-tls.conf"
      PROXY_HTTPS_SERVER="server {
        $(listen_lines "$PROXY_HTTPS_PORT" " ssl")
        server_name $PROXY_DOMAIN;
        ssl_certificate $PROXY_TLS_CERT;
        ssl_certificate_key $PROXY_TLS_KEY;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache shared:dy_tls:10m;
        include $PROXY_CONF_DIR/headers.conf;
        include $run/ui.conf;
    }" ;;
    plain)
      printf 'include %s/ui.conf;\n' "$run" > "$run/http-plain.conf" ;;
    wait)
      printf '%s\n' "error_page 503 /_proxy/https-needed.html;" \
        "location ^~ /_proxy/ { internal; alias $PROXY_PAGES/; }" \
        "location / { return 503; }" > "$run/http-wait.conf" ;;
  esac
  export PROXY_MODE PROXY_LISTEN_HTTP PROXY_REAL_IP PROXY_HTTPS_SERVER PROXY_API_HTTP
  # Only these variables: nginx's own $variables stay as they are.
  envsubst '${PROXY_UPSTREAM} ${PROXY_REQUEST_RATE} ${PROXY_REQUEST_BURST} ${PROXY_SESSION_RATE}
    ${PROXY_UPLOAD_RATE} ${PROXY_DOMAIN} ${PROXY_RUN_DIR} ${PROXY_ACCESS_LOG} ${PROXY_CONF_DIR}
    ${PROXY_ACME_DIR} ${PROXY_MODE} ${PROXY_LISTEN_HTTP} ${PROXY_REAL_IP} ${PROXY_HTTPS_SERVER} ${PROXY_API_HTTP}' \
    < "$PROXY_CONF_DIR/nginx.conf.template" > "$run/nginx.conf"
  case "$PROXY_MODE" in
    tls) say "https on :$PROXY_HTTPS_PORT (browsers: port $PROXY_PUBLIC_HTTPS_PORT), http on :$PROXY_HTTP_PORT redirects there -> $PROXY_UPSTREAM; user $PROXY_USER" ;;
    plain) say "WARNING: no certificate; the password travels in plain HTTP on :$PROXY_HTTP_PORT (PROXY_ALLOW_PLAIN_HTTP=true) -> $PROXY_UPSTREAM; user $PROXY_USER" ;;
    wait) say "no certificate${PROXY_TLS_CERT:+ readable at $PROXY_TLS_CERT yet}: http on :$PROXY_HTTP_PORT serves ACME challenges and a page saying HTTPS is not set up (set PROXY_TLS_CERT/PROXY_TLS_KEY, or PROXY_ALLOW_PLAIN_HTTP=true)" ;;
  esac
}
