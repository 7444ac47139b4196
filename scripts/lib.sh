# shellcheck shell=bash
# Shared helpers for the bench scripts (sourced, not run): installing the
# tools they need on a fresh machine, starting and stopping the servers.
# Callers define `say` and `die` first, and, for the start_* helpers, an
# array STARTED (every pid started is appended to it; the caller's EXIT trap
# stops them) and REL (the directory of the release binaries).

apt_updated=0

# apt_install PKG...: as root, `apt-get update` once per script, then install.
apt_install() {
  [ "$(id -u)" -eq 0 ] || return 1
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq >&2 || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >&2
}

# find_oha: prints the path of oha, installing it with cargo when missing
# (waiting for an install already under way); prints nothing if it cannot.
find_oha() {
  local oha
  oha="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
  if [ ! -x "$oha" ] && pgrep -f 'cargo install.*oha' >/dev/null 2>&1; then
    say "oha is being installed by another process: waiting for it (at most 20 min)"
    for _ in $(seq 1 240); do
      [ -x "$oha" ] && break
      pgrep -f 'cargo install.*oha' >/dev/null 2>&1 || break
      sleep 5
    done
  fi
  if [ ! -x "$oha" ]; then
    say "installing oha (cargo install oha --locked; takes minutes)"
    timeout 1800 cargo install oha --locked >&2 || say "cannot install oha"
  fi
  if [ -x "$oha" ]; then echo "$oha"; fi
}

# nginx_bin: prints the path of nginx, installing Debian's nginx when
# missing; prints nothing if it cannot.
nginx_bin() {
  if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    say "installing nginx (apt)"
    apt_install nginx || { say "cannot install nginx"; return 0; }
  fi
  if command -v nginx >/dev/null; then command -v nginx; elif [ -x /usr/sbin/nginx ]; then echo /usr/sbin/nginx; fi
}

# nchan_module: prints the path of nchan's nginx module (Debian's
# libnginx-mod-nchan, installed with nginx when missing); nothing if it cannot.
nchan_module() {
  local m=/usr/lib/nginx/modules/ngx_nchan_module.so
  if [ ! -f "$m" ] || [ -z "$(nginx_bin)" ]; then
    say "installing nginx and nchan (apt: nginx libnginx-mod-nchan)"
    apt_install nginx libnginx-mod-nchan || { say "cannot install libnginx-mod-nchan"; return 0; }
  fi
  if [ -f "$m" ]; then echo "$m"; fi
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# jq_get FILE a.b.c -> the value ("" if missing or null)
jq_get() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1" "$2" 2>/dev/null || true
}

# pin CPU: the taskset prefix for CPU ("" = not pinned)
pin() { if [ -n "$1" ]; then echo "taskset -c $1"; fi; }

# stop_pid PID: stop one process we started (TERM, then KILL after 5 s), and
# forget it.
stop_pid() {
  local p="$1" q keep=()
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
  for q in "${STARTED[@]+"${STARTED[@]}"}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

# stop_all: stop everything in STARTED (for the EXIT trap)
stop_all() {
  local p
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  STARTED=()
}

# logcast_has_watch BIN: does this logcast take --watch? (engines before the
# change-driven tails have only the --poll-interval-ms stat poll)
logcast_has_watch() { "$1" --help 2>&1 | grep -q -- '--watch'; }

# start_logcast DIR CPU BIN [ARGS...]: a fresh logcast on a free port with log
# dir DIR/logs (kept if it exists), pinned to CPU ("" = not pinned), output in
# DIR/daemon.{out,err}. Sets LC_URL, LC_PID and LC_CMD (the command line).
start_logcast() {
  local dir="$1" cpu="$2" bin="$3"
  shift 3
  mkdir -p "$dir/logs"
  : >"$dir/daemon.out"
  LC_CMD="$(pin "$cpu") $bin --port 0 --log-dir $dir/logs${*:+ $*}"
  LC_CMD="${LC_CMD# }"
  # shellcheck disable=SC2046
  RUST_LOG=warn $(pin "$cpu") "$bin" --port 0 --log-dir "$dir/logs" "$@" >"$dir/daemon.out" 2>"$dir/daemon.err" &
  LC_PID=$!
  STARTED+=("$LC_PID")
  LC_URL=""
  for _ in $(seq 1 100); do
    LC_URL="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$dir/daemon.out" 2>/dev/null | head -1 || true)"
    [ -n "$LC_URL" ] && return 0
    kill -0 "$LC_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$dir/daemon.err" >&2
  die "logcast did not start: $LC_CMD"
}

# start_nchan DIR CPU: nginx with the nchan module and one worker, from
# scripts/nchan.conf.tmpl, on a free loopback port, pinned to CPU ("" = not
# pinned): subscribers at $NCH_URL/sub/<channel> (EventSource), publisher at
# $NCH_URL/pub/<channel>. Sets NCH_URL, NCH_PID (the master: give the load
# generator --pid $NCH_PID --pid-tree, which takes in the worker) and NCH_CMD.
# Needs ROOT (the repository).
start_nchan() {
  local dir="$1" cpu="$2" module bin port user_line=""
  module="$(nchan_module)"
  bin="$(nginx_bin)"
  if [ -z "$module" ] || [ -z "$bin" ]; then die "nginx with nchan is not available"; fi
  mkdir -p "$dir/tmp"
  port="$(free_port)"
  [ "$(id -u)" -eq 0 ] && user_line="user root root;"
  sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" -e "s|@USER@|$user_line|g" -e "s|@MODULE@|$module|g" \
    "$ROOT/scripts/nchan.conf.tmpl" >"$dir/nginx.conf"
  NCH_CMD="$(pin "$cpu") $bin -p $dir/ -c $dir/nginx.conf"
  NCH_CMD="${NCH_CMD# }"
  # shellcheck disable=SC2046
  $(pin "$cpu") "$bin" -p "$dir/" -c "$dir/nginx.conf" 2>"$dir/stderr" &
  NCH_PID=$!
  STARTED+=("$NCH_PID")
  NCH_URL="http://127.0.0.1:$port"
  for _ in $(seq 1 50); do
    curl -s -o /dev/null "$NCH_URL/healthz" && break
    kill -0 "$NCH_PID" 2>/dev/null || break
    sleep 0.1
  done
  if ! curl -s -o /dev/null "$NCH_URL/healthz"; then
    cat "$dir/stderr" "$dir/error.log" >&2 2>/dev/null || true
    die "nginx+nchan did not start: $NCH_CMD"
  fi
  # wait for the worker process (the load generator reads its CPU)
  for _ in $(seq 1 50); do
    [ -n "$(cat "/proc/$NCH_PID/task/$NCH_PID/children" 2>/dev/null)" ] && break
    sleep 0.1
  done
}

# make_logs DIR N PREFIX: creates DIR/PREFIX0.log .. DIR/PREFIX<N-1>.log (empty)
make_logs() {
  python3 -c '
import os, sys
d, n, p = sys.argv[1], int(sys.argv[2]), sys.argv[3]
for i in range(n):
    open(os.path.join(d, "%s%d.log" % (p, i)), "a").close()' "$1" "$2" "$3"
}
