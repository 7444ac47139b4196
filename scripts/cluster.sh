#!/usr/bin/env bash
# A logcast cluster on one machine: several independent daemons sharing ONE
# log directory, behind an nginx that spreads connections over them. This is
# the shape of a multi-host deployment (a shared volume, a load balancer),
# shrunk onto loopback.
#
#   scripts/cluster.sh start          build (release) if needed, start the nodes and nginx,
#                                     print the nginx URL
#   scripts/cluster.sh stop           stop nginx, then every node (SIGTERM, wait, exit codes)
#   scripts/cluster.sh status         what runs, with each node's open streams and writers
#   scripts/cluster.sh url            the nginx URL
#   scripts/cluster.sh node-stop I [SIGNAL]   stop node I (1-based; default TERM, KILL works)
#   scripts/cluster.sh node-start I   start node I again, on its port
#
# Environment:
#   CLUSTER_DIR    where everything lives [/tmp/logcast-cluster]:
#                  logs/ (the shared log dir), node-I/{pid,port,stdout,stderr,exit},
#                  nginx/{nginx.conf,nginx.pid,error.log,access.log}, url
#   CLUSTER_NODES  number of daemons [3]
#   NODE_PORTS     their ports, space- or comma-separated [free ports]
#   NGINX_PORT     nginx's port [a free port]
#   LOGCAST_BIN    daemon binary [target/release/logcast, built with cargo]
#   LOGCAST_ARGS   extra daemon options, e.g. "--write-interval-ms 100"
#   NGINX          nginx binary [nginx on PATH or /usr/sbin/nginx; apt-get installed if missing]
#
# Every node runs `logcast --workers 1` on its own loopback port. A log created
# through node A is written by node A's writer; nodes B and C see it as a file
# another program writes, and end their streams when it turns read-only.
# A client that loses its node (stopped, killed) reconnects through nginx with
# Last-Event-ID and resumes on another node exactly where it was.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CLUSTER_DIR="${CLUSTER_DIR:-/tmp/logcast-cluster}"
CLUSTER_NODES="${CLUSTER_NODES:-3}"
LOGS="$CLUSTER_DIR/logs"
NGX="$CLUSTER_DIR/nginx"

say() { printf '[cluster] %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }
read_file() { cat "$1" 2>/dev/null || true; }
node_dir() { echo "$CLUSTER_DIR/node-$1"; }
node_pid() { read_file "$(node_dir "$1")/pid"; }
node_port() { read_file "$(node_dir "$1")/port"; }
nginx_pid() { read_file "$NGX/nginx.pid"; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else return 1; fi
}

find_nginx() {
  if [ -n "${NGINX:-}" ]; then echo "$NGINX"; return; fi
  if command -v nginx >/dev/null 2>&1; then command -v nginx; return; fi
  if [ -x /usr/sbin/nginx ]; then echo /usr/sbin/nginx; return; fi
  say "nginx missing: installing it (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  as_root apt-get update -qq >&2 && as_root apt-get install -y -qq nginx >/dev/null \
    || die "cannot install nginx"
  # Debian may start the packaged service on port 80; this cluster runs its own nginx.
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl stop nginx >/dev/null 2>&1 || true
  elif command -v service >/dev/null 2>&1; then
    as_root service nginx stop >/dev/null 2>&1 || true
  fi
  [ -x /usr/sbin/nginx ] || die "nginx not found after installing it"
  echo /usr/sbin/nginx
}

find_bin() {
  if [ -n "${LOGCAST_BIN:-}" ]; then
    [ -x "$LOGCAST_BIN" ] || die "LOGCAST_BIN=$LOGCAST_BIN is not an executable"
    echo "$LOGCAST_BIN"; return
  fi
  command -v cargo >/dev/null 2>&1 || die "cargo not found (or set LOGCAST_BIN)"
  say "cargo build --release"
  (cd "$ROOT" && cargo build --release --quiet >&2) || die "cargo build --release failed"
  echo "$ROOT/target/release/logcast"
}

# A free TCP port on 127.0.0.1 (the kernel picks it; tiny race until used).
free_port() {
  if command -v python3 >/dev/null 2>&1; then
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
    return
  fi
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 40000))
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
  die "no free port found"
}

http_code() { curl -s -o /dev/null -m 2 -w '%{http_code}' "$1" 2>/dev/null || true; }

metric() { # metric URL NAME -> value or "-"
  local v
  v=$(curl -s -m 2 "$1/metrics" 2>/dev/null | awk -v n="$2" '$1 == n { print $2 }')
  echo "${v:--}"
}

# ---------------------------------------------------------------------------
# nodes
# ---------------------------------------------------------------------------

# start_node I PORT: starts one daemon in its own session; a small sh parent
# records its pid and, when it ends, its exit status (node-I/exit).
start_node() {
  local i=$1 port=$2 bin=$3 d
  d=$(node_dir "$i")
  mkdir -p "$d"
  rm -f "$d/pid" "$d/exit" "$d/stdout"
  # shellcheck disable=SC2086  # LOGCAST_ARGS is a list of options
  setsid sh -c '
    d=$1; shift
    "$@" >"$d/stdout" 2>>"$d/stderr" </dev/null &
    echo $! >"$d/pid"
    wait $!
    echo $? >"$d/exit"
  ' sh "$d" "$bin" --workers 1 --bind 127.0.0.1 --port "$port" --log-dir "$LOGS" ${LOGCAST_ARGS:-} \
    </dev/null >/dev/null 2>&1 &
  local deadline=$((SECONDS + 15)) line=""
  while [ $SECONDS -lt $deadline ]; do
    line=$(head -n1 "$d/stdout" 2>/dev/null || true)
    case "$line" in
      "listening on http://"*) break ;;
    esac
    if [ -f "$d/exit" ]; then
      die "node $i exited with status $(read_file "$d/exit") at start: $(tail -n 3 "$d/stderr" 2>/dev/null)"
    fi
    sleep 0.05
  done
  case "$line" in
    "listening on http://"*) ;;
    *) die "node $i did not start within 15 s: $(tail -n 3 "$d/stderr" 2>/dev/null)" ;;
  esac
  echo "${line##*:}" >"$d/port"
  say "node $i: pid $(node_pid "$i"), ${line#listening on }"
}

# stop_node I SIGNAL: signals it and waits (10 s, then SIGKILL) for its exit status.
stop_node() {
  local i=$1 sig=${2:-TERM} pid d code
  d=$(node_dir "$i")
  pid=$(node_pid "$i")
  if ! alive "$pid"; then
    [ -n "$pid" ] && say "node $i: not running (exit status $(read_file "$d/exit"))"
    return 0
  fi
  kill "-$sig" "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  if alive "$pid"; then
    say "node $i: pid $pid still running 10 s after SIG$sig: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # The recording parent writes the status just after the daemon exits.
  deadline=$((SECONDS + 2))
  while [ ! -s "$d/exit" ] && [ $SECONDS -lt $deadline ]; do sleep 0.02; done
  code=$(read_file "$d/exit")
  say "node $i: pid $pid stopped by SIG$sig, exit status ${code:-unknown}"
  if [ "$sig" = TERM ] || [ "$sig" = INT ]; then
    [ "$code" = 0 ] || return 1
  fi
  return 0
}

# ---------------------------------------------------------------------------
# nginx
# ---------------------------------------------------------------------------

write_nginx_conf() {
  local port=$1 i upstreams=""
  for i in $(seq 1 "$CLUSTER_NODES"); do
    upstreams+="        server 127.0.0.1:$(node_port "$i") max_fails=1 fail_timeout=2s;"$'\n'
  done
  mkdir -p "$NGX/tmp"
  cat >"$NGX/nginx.conf" <<EOF
# Generated by scripts/cluster.sh; rewritten at every start.
worker_processes 1;
worker_rlimit_nofile 20000;
pid $NGX/nginx.pid;
error_log $NGX/error.log notice;

events {
    worker_connections 16384;
}

http {
    access_log $NGX/access.log;
    client_body_temp_path $NGX/tmp/body;
    proxy_temp_path $NGX/tmp/proxy;
    fastcgi_temp_path $NGX/tmp/fastcgi;
    uwsgi_temp_path $NGX/tmp/uwsgi;
    scgi_temp_path $NGX/tmp/scgi;

    upstream logcast {
$upstreams        keepalive 32;
        keepalive_timeout 30s;
    }

    server {
        listen 127.0.0.1:$port;

        location / {
            proxy_pass http://logcast;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$proxy_add_x_forwarded_for;
            # SSE: every event goes out as it arrives, streams may last long.
            proxy_buffering off;
            proxy_cache off;
            proxy_read_timeout 1h;
            proxy_connect_timeout 2s;
            # A node that is down: try the next one (a POST too, when it was
            # never sent), and leave the dead one alone for fail_timeout.
            proxy_next_upstream error timeout;
        }
    }
}
EOF
}

start_nginx() {
  local nginx=$1 port=$2
  write_nginx_conf "$port"
  "$nginx" -t -q -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" \
    || die "nginx rejects $NGX/nginx.conf"
  "$nginx" -p "$NGX" -e "$NGX/error.log" -c "$NGX/nginx.conf" || die "nginx failed to start (see $NGX/error.log)"
  local deadline=$((SECONDS + 10))
  while [ "$(http_code "http://127.0.0.1:$port/healthz")" != 200 ]; do
    [ $SECONDS -lt $deadline ] || die "nginx on port $port does not answer /healthz (see $NGX/error.log)"
    sleep 0.05
  done
  echo "http://127.0.0.1:$port" >"$CLUSTER_DIR/url"
  say "nginx: pid $(nginx_pid), http://127.0.0.1:$port"
}

stop_nginx() {
  local pid
  pid=$(nginx_pid)
  alive "$pid" || return 0
  # SIGTERM is nginx's fast shutdown: it does not wait for streams to end.
  kill -TERM "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 10))
  while alive "$pid" && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
  if alive "$pid"; then
    say "nginx: pid $pid still running 10 s after SIGTERM: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    return 1
  fi
  say "nginx: pid $pid stopped"
}

# ---------------------------------------------------------------------------
# commands
# ---------------------------------------------------------------------------

cmd_start() {
  local i pid
  for i in $(seq 1 "$CLUSTER_NODES"); do
    pid=$(node_pid "$i")
    alive "$pid" && die "node $i already runs (pid $pid): scripts/cluster.sh stop first"
  done
  alive "$(nginx_pid)" && die "nginx already runs (pid $(nginx_pid)): scripts/cluster.sh stop first"
  command -v curl >/dev/null 2>&1 || die "curl is needed"

  local bin nginx
  bin=$(find_bin)
  nginx=$(find_nginx)
  mkdir -p "$CLUSTER_DIR" "$LOGS"
  rm -rf "$NGX" "$CLUSTER_DIR"/node-* "$CLUSTER_DIR/url"
  mkdir -p "$NGX"

  local -a ports=()
  if [ -n "${NODE_PORTS:-}" ]; then
    read -r -a ports <<<"${NODE_PORTS//,/ }"
    [ "${#ports[@]}" -eq "$CLUSTER_NODES" ] || die "NODE_PORTS has ${#ports[@]} ports for $CLUSTER_NODES nodes"
  fi
  for i in $(seq 1 "$CLUSTER_NODES"); do
    # Port 0: each daemon picks a free port itself and prints it.
    start_node "$i" "${ports[$((i - 1))]:-0}" "$bin"
  done
  start_nginx "$nginx" "${NGINX_PORT:-$(free_port)}"
  echo "$bin" >"$CLUSTER_DIR/bin"
  cat "$CLUSTER_DIR/url"
}

cmd_stop() {
  local rc=0 i
  stop_nginx || rc=1
  for i in $(seq 1 "$CLUSTER_NODES"); do
    [ -d "$(node_dir "$i")" ] || continue
    stop_node "$i" TERM || rc=1
  done
  return $rc
}

cmd_status() {
  local i pid port running=0 url
  for i in $(seq 1 "$CLUSTER_NODES"); do
    pid=$(node_pid "$i")
    port=$(node_port "$i")
    if alive "$pid"; then
      running=$((running + 1))
      url="http://127.0.0.1:$port"
      printf 'node %s  pid %-7s %-24s healthz %s  streams %s  writers %s\n' "$i" "$pid" "$url" \
        "$(http_code "$url/healthz")" "$(metric "$url" logcast_streams_open)" "$(metric "$url" logcast_writers_active)"
    elif [ -n "$pid" ]; then
      printf 'node %s  stopped (pid %s, port %s, exit status %s)\n' "$i" "$pid" "${port:--}" "$(read_file "$(node_dir "$i")/exit")"
    else
      printf 'node %s  not started\n' "$i"
    fi
  done
  pid=$(nginx_pid)
  if alive "$pid"; then
    running=$((running + 1))
    url=$(read_file "$CLUSTER_DIR/url")
    printf 'nginx   pid %-7s %-24s healthz %s\n' "$pid" "$url" "$(http_code "$url/healthz")"
  else
    printf 'nginx   not running\n'
  fi
  printf 'logs    %s (%s files)\n' "$LOGS" "$(find "$LOGS" -maxdepth 1 -name '*.log' 2>/dev/null | wc -l)"
  [ "$running" -gt 0 ]
}

node_arg() {
  local i=${1:-}
  [[ "$i" =~ ^[0-9]+$ ]] && [ "$i" -ge 1 ] && [ "$i" -le "$CLUSTER_NODES" ] \
    || die "node number 1..$CLUSTER_NODES expected, got '${i}'"
  echo "$i"
}

cmd_node_start() {
  local i bin port
  i=$(node_arg "${1:-}")
  alive "$(node_pid "$i")" && die "node $i already runs (pid $(node_pid "$i"))"
  port=$(node_port "$i")
  [ -n "$port" ] || die "node $i was never started (scripts/cluster.sh start)"
  bin=$(read_file "$CLUSTER_DIR/bin")
  [ -x "$bin" ] || bin=$(find_bin)
  start_node "$i" "$port" "$bin"
}

cmd_node_stop() {
  local i
  i=$(node_arg "${1:-}")
  stop_node "$i" "${2:-TERM}"
}

case "${1:-}" in
  start) cmd_start ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  url) read_file "$CLUSTER_DIR/url" ;;
  node-start) cmd_node_start "${2:-}" ;;
  node-stop) cmd_node_stop "${2:-}" "${3:-TERM}" ;;
  *)
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
    ;;
esac
