# shellcheck shell=bash
# Shared helpers for the bench and load scripts (sourced, not run; by
# scripts/bench-*.sh, compare.sh, c1m.sh and loadtest.sh). It owns:
#   - their common preamble: --help from the script's header (usage), the
#     tools they need, installed on a fresh machine (need_tool, apt_install,
#     find_oha, nginx_bin, nchan_module), the release binaries, built when
#     missing (release_bins), and the temporary and results directories with
#     the EXIT trap that stops what was started and removes them (work_dir,
#     results_dir);
#   - starting and stopping the servers (start_logcast, start_nchan,
#     stop_pid, stop_all) and small tools (free_port, jq_get, pin, make_logs).
# Each script keeps its own options, defaults and output. Callers define
# `say` and `die` first, and, for the start_* helpers, an array STARTED (every
# pid started is appended to it; the caller's EXIT trap stops them) and REL
# (the directory of the release binaries).

apt_updated=0

# usage: prints the calling script's header, from its line 2 down to its
# `set -euo pipefail` line (left out), without the comment marks: its --help.
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

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

# need_tool CMD [PACKAGE [MESSAGE]]: CMD is on the PATH, or apt_install
# PACKAGE (default CMD) brings it, or die with MESSAGE (default "CMD is needed").
need_tool() { command -v "$1" >/dev/null || apt_install "${2:-$1}" || die "${3:-$1 is needed}"; }

# release_bins: cargo build --release --workspace when BUILD=1 or a binary is
# missing from REL (logcast-load, write-floor, and logcast unless BIN names
# another); then BIN (default REL/logcast) must be there. Needs ROOT.
release_bins() {
  if [ "${BUILD:-0}" = 1 ] || [ ! -x "$REL/logcast-load" ] || [ ! -x "$REL/write-floor" ] || { [ -z "$BIN" ] && [ ! -x "$REL/logcast" ]; }; then
    say "cargo build --release --workspace"
    (cd "$ROOT" && timeout 1800 cargo build --release --workspace --bins >&2)
  fi
  BIN="${BIN:-$REL/logcast}"
  [ -x "$BIN" ] || die "no logcast at $BIN"
}

# work_dir NAME: WORK, a new /tmp/logcast-NAME.XXXXXX, and STARTED, empty. On
# exit everything in STARTED is stopped and WORK removed; INT, TERM, HUP and
# PIPE exit 130 (through that EXIT trap).
work_dir() {
  WORK="$(mktemp -d "/tmp/logcast-$1.XXXXXX")"
  STARTED=()
  trap 'stop_all; rm -rf "$WORK"' EXIT
  trap 'exit 130' INT TERM HUP PIPE
}

# results_dir NAME: RES, a new /tmp/logcast-NAME.XXXXXX for the results (kept,
# readable by all), WORK=$RES/work for the work files, and STARTED, empty. On
# exit everything in STARTED is stopped, WORK is removed (`kept WORK` with
# KEEP=1) and the script says `results in RES`; INT, TERM, HUP and PIPE exit
# 130 (through that EXIT trap).
results_dir() {
  RES="$(mktemp -d "/tmp/logcast-$1.XXXXXX")"
  chmod 755 "$RES"
  WORK="$RES/work"
  mkdir -p "$WORK"
  STARTED=()
  trap results_dir_cleanup EXIT
  trap 'exit 130' INT TERM HUP PIPE
}
results_dir_cleanup() {
  stop_all
  if [ "${KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  say "results in $RES"
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
