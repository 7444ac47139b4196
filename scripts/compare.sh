#!/usr/bin/env bash
# logcast against nginx (and other implementations) on the same machine, in one run.
#
#  1. HTTP: GET /, GET /healthz, GET /api/logs/<id> with wrk, wrk pipelined x16
#     and oha (scripts/loadtest.sh) against logcast, against nginx with one
#     worker serving the same bytes (the page saved from logcast, a static JSON
#     file equal to logcast's /api/logs/<id> answer, /healthz as `return 200
#     "ok"`; config from scripts/nginx-static.conf.tmpl), and against every
#     --peer. The servers run on CPU 0 (taskset -c 0), the load tools on CPU 1.
#  2. Streams: for 1,000 and 10,000 streams of one log (logcast-load, on CPU 1),
#     a fresh logcast per size: RSS per stream, idle CPU, then marks at 2/s:
#     marker latency p50/p99, missed marks, server CPU per delivered event;
#     the same for each --peer that gives a logdir.
#  3. The kernel floor, right after each logcast stream test: write-floor (one
#     ~100-byte write to each of N loopback sockets, on CPU 0), with a client
#     that never reads and with one reading through epoll on CPU 1, next to
#     logcast's CPU per delivered event.
#  Then prints side-by-side tables with ratios against logcast.
#
# usage: scripts/compare.sh [options]
#   --duration SECS        per HTTP run (default 10)
#   --connections N        HTTP connections (default 50)
#   --streams "N ..."      stream counts (default "1000 10000")
#   --hold SECS            marks are written for this long (default 20)
#   --idle-secs SECS       idle CPU window before the marks (default 30: two
#                          heartbeat periods, so that the keepalives are counted)
#   --mark-rate R          marks per second (default 2)
#   --peer NAME=BASEURL[,logdir=DIR][,pid=PID[:PID..]]
#                          another implementation, already running; with logdir
#                          (its log dir, where the mark file is created) it is
#                          also stream-tested, with pid its RSS and CPU are read
#   --no-nginx             skip nginx
#   --skip-http | --skip-streams | --skip-floor
#   --build                cargo build --release first (default: only if a binary is missing)
#   --keep                 keep the temp dir (logs, JSON results)
#   -h, --help
# Everything it starts is stopped on exit; every step is bounded by `timeout`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REL="$ROOT/target/release"

DURATION=10
CONNS=50
STREAMS="1000 10000"
HOLD=20
IDLE=30
RATE=2
PEERS=()
NGINX=1
DO_HTTP=1
DO_STREAMS=1
DO_FLOOR=1
BUILD=0
KEEP=0

usage() { sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; }
die() { echo "compare: $*" >&2; exit 1; }
say() { echo "compare: $*" >&2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --hold) HOLD="$2"; shift 2 ;;
    --idle-secs) IDLE="$2"; shift 2 ;;
    --mark-rate) RATE="$2"; shift 2 ;;
    --peer) PEERS+=("$2"); shift 2 ;;
    --no-nginx) NGINX=0; shift ;;
    --skip-http) DO_HTTP=0; shift ;;
    --skip-streams) DO_STREAMS=0; shift ;;
    --skip-floor) DO_FLOOR=0; shift ;;
    --build) BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "compare: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server on CPU 0, load on CPU 1)"

TMP="$(mktemp -d /tmp/logcast-compare.XXXXXX)"
chmod 755 "$TMP"
STARTED=()
cleanup() {
  local p
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${STARTED[@]+"${STARTED[@]}"}"; do
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  if [ "$KEEP" = 1 ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE

stop_pid() { # stop one process we started, and forget it
  local p="$1" q keep=()
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  for q in "${STARTED[@]+"${STARTED[@]}"}"; do [ "$q" = "$p" ] || keep+=("$q"); done
  STARTED=("${keep[@]+"${keep[@]}"}")
}

# ---- prerequisites -----------------------------------------------------------
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
command -v curl >/dev/null || apt_install curl || die "curl is needed"
command -v python3 >/dev/null || apt_install python3 || die "python3 is needed"
command -v taskset >/dev/null || apt_install util-linux || die "taskset is needed"
if [ "$NGINX" = 1 ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
  say "installing nginx (apt)"
  apt_install nginx || { say "cannot install nginx: skipped"; NGINX=0; }
fi
NGINX_BIN="$(command -v nginx || echo /usr/sbin/nginx)"

if [ "$DO_HTTP" = 1 ]; then
  command -v wrk >/dev/null || { say "installing wrk (apt)"; apt_install wrk || say "cannot install wrk"; }
  OHA="$(find_oha)"
fi

if [ "$BUILD" = 1 ] || [ ! -x "$REL/logcast" ] || [ ! -x "$REL/logcast-load" ] || [ ! -x "$REL/write-floor" ]; then
  say "cargo build --release"
  (cd "$ROOT" && timeout 1800 cargo build --release --bins >&2)
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
jq_get() { # jq_get FILE a.b.c -> value ("" if missing/null)
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v.get(k) if isinstance(v, dict) else None
print("" if v is None else v)' "$1" "$2" 2>/dev/null || true
}

# start_logcast DIR -> sets LC_URL, LC_PID
start_logcast() {
  mkdir -p "$1/logs"
  : >"$1/daemon.out"
  RUST_LOG=warn taskset -c 0 "$REL/logcast" --port 0 --log-dir "$1/logs" >"$1/daemon.out" 2>"$1/daemon.err" &
  LC_PID=$!
  STARTED+=("$LC_PID")
  LC_URL=""
  for _ in $(seq 1 100); do
    LC_URL="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$1/daemon.out" 2>/dev/null | head -1 || true)"
    [ -n "$LC_URL" ] && return 0
    kill -0 "$LC_PID" 2>/dev/null || break
    sleep 0.1
  done
  cat "$1/daemon.err" >&2
  die "logcast did not start"
}

declare -A PEER_URL PEER_LOGDIR PEER_PID
PEER_NAMES=()
for spec in "${PEERS[@]+"${PEERS[@]}"}"; do
  name="${spec%%=*}"; rest="${spec#*=}"
  [ -n "$name" ] && [ "$name" != "$spec" ] || die "--peer: NAME=BASEURL[,logdir=DIR][,pid=PID]: '$spec'"
  IFS=',' read -r -a parts <<<"$rest"
  PEER_URL[$name]="${parts[0]%/}"
  PEER_LOGDIR[$name]=""
  PEER_PID[$name]=""
  for kv in "${parts[@]:1}"; do
    case "$kv" in
      logdir=*) PEER_LOGDIR[$name]="${kv#logdir=}" ;;
      pid=*) PEER_PID[$name]="${kv#pid=}"; PEER_PID[$name]="${PEER_PID[$name]//:/,}" ;;
      *) die "--peer $name: unknown field '$kv'" ;;
    esac
  done
  PEER_NAMES+=("$name")
done

SERVERS=(logcast)

# ---- 1. HTTP -------------------------------------------------------------------
HTTP_TSV="$TMP/http.tsv"
: >"$HTTP_TSV"
if [ "$DO_HTTP" = 1 ]; then
  mkdir -p "$TMP/http"
  start_logcast "$TMP/http"
  say "logcast at $LC_URL (pid $LC_PID, CPU 0)"
  body="$(curl -sS --max-time 5 -X POST "$LC_URL/api/logs?duration=1")"
  LOG_ID="$(printf '%s' "$body" | python3 -c 'import json,sys; print(json.load(sys.stdin)["log_id"])')" \
    || die "POST /api/logs: $body"
  for _ in $(seq 1 50); do
    curl -sS --max-time 5 "$LC_URL/api/logs/$LOG_ID" | grep -q '"writing": false' && break
    sleep 0.2
  done
  mkdir -p "$TMP/www" "$TMP/tmp"
  curl -sS --max-time 5 -o "$TMP/www/index.html" "$LC_URL/"
  curl -sS --max-time 5 -o "$TMP/www/log.json" "$LC_URL/api/logs/$LOG_ID"
  chmod -R a+rX "$TMP/www"

  if [ "$NGINX" = 1 ]; then
    NG_PORT="$(free_port)"
    mkdir -p "$TMP/nginx"
    user_line=""
    [ "$(id -u)" -eq 0 ] && user_line="user root root;"
    sed -e "s|@DIR@|$TMP|g" -e "s|@PORT@|$NG_PORT|g" -e "s|@LOGID@|$LOG_ID|g" -e "s|@USER@|$user_line|g" \
      "$ROOT/scripts/nginx-static.conf.tmpl" >"$TMP/nginx/nginx.conf"
    taskset -c 0 "$NGINX_BIN" -p "$TMP/nginx/" -c "$TMP/nginx/nginx.conf" 2>"$TMP/nginx/stderr" &
    NG_PID=$!
    STARTED+=("$NG_PID")
    NG_URL="http://127.0.0.1:$NG_PORT"
    for _ in $(seq 1 50); do curl -s -o /dev/null "$NG_URL/healthz" && break; sleep 0.1; done
    curl -s -o /dev/null "$NG_URL/healthz" || { cat "$TMP/nginx/stderr" >&2; die "nginx did not start"; }
    for p in / /api/logs/"$LOG_ID" /healthz; do
      cmp -s <(curl -s "$LC_URL$p") <(curl -s "$NG_URL$p") || say "warning: nginx body differs from logcast's for $p"
    done
    SERVERS+=(nginx)
  fi
  SERVERS+=("${PEER_NAMES[@]+"${PEER_NAMES[@]}"}")

  for s in "${SERVERS[@]}"; do
    case "$s" in
      logcast) url="$LC_URL"; idarg=(--log-id "$LOG_ID") ;;
      nginx) url="$NG_URL"; idarg=(--log-id "$LOG_ID") ;;
      *) url="${PEER_URL[$s]}"; idarg=() ;;
    esac
    say "HTTP: $s at $url"
    timeout $((DURATION * 12 + 600)) "$ROOT/scripts/loadtest.sh" --url "$url" "${idarg[@]+"${idarg[@]}"}" \
      --duration "$DURATION" --connections "$CONNS" --load-cpu 1 --label "$s" --tsv "$HTTP_TSV" >&2 \
      || say "loadtest against $s failed"
  done
  if [ "$NGINX" = 1 ]; then stop_pid "$NG_PID"; fi
  stop_pid "$LC_PID"
fi

# ---- 3. the floor (run inside 2.) ----------------------------------------------------------
# For each stream count N, right after the stream tests (same machine state):
# one ~100-byte write to each of N established loopback sockets, 20 rounds
# 500 ms apart (as the marks come), on CPU 0 like the daemon; once with a
# client that never reads, once with one reading through epoll on CPU 1 (as
# logcast-load does, so the writer pays for waking it, as the daemon does).
FLOOR_TSV="$TMP/floor.tsv"
: >"$FLOOR_TSV"
run_floor() { # N
  local n="$1" s
  s=$((n > 19000 ? 19000 : n))
  say "write-floor: $s sockets, 20 rounds, on CPU 0, client never reading"
  timeout 300 taskset -c 0 "$REL/write-floor" --sockets "$s" --rounds 20 --pause-ms 500 --json \
    >"$TMP/floor-$n.json" || true
  say "write-floor: the same, client reading with epoll on CPU 1"
  timeout 300 taskset -c 0 "$REL/write-floor" --sockets "$s" --rounds 20 --pause-ms 500 --drain --client-cpu 1 --json \
    >"$TMP/floor-drain-$n.json" || true
  printf '%s\t%s\t%s\n' "$n" "$(jq_get "$TMP/floor-$n.json" cpu_us_per_write)" \
    "$(jq_get "$TMP/floor-drain-$n.json" cpu_us_per_write)" >>"$FLOOR_TSV"
}

# ---- 2. streams ----------------------------------------------------------------
STREAM_TSV="$TMP/streams.tsv"
: >"$STREAM_TSV"
stream_run() { # label N base_url logdir pids
  local label="$1" n="$2" base="$3" dir="$4" pids="$5" name procs out
  name="compare-$n-$$-$RANDOM"
  : >"$dir/$name.log"
  procs=1
  [ "$n" -gt 5000 ] && procs=2
  out="$TMP/$label-$n.json"
  say "streams: $label, $n streams, idle ${IDLE}s, marks at $RATE/s for ${HOLD}s"
  timeout $((n / 1000 + IDLE + HOLD + 180)) taskset -c 1 "$REL/logcast-load" \
    --url "$base/api/logs/$name/stream" --streams "$n" --processes "$procs" --ramp 5000 \
    --hold "$HOLD" --idle-secs "$IDLE" --mark-file "$dir/$name.log" --mark-rate "$RATE" \
    --expect-marks ${pids:+--pid "$pids"} --json >"$out" 2>"$TMP/$label-$n.err" || true
  tail -n 14 "$TMP/$label-$n.err" >&2 || true
  rm -f "$dir/$name.log"
  if [ ! -s "$out" ]; then say "logcast-load against $label failed"; return; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$n" \
    "$(jq_get "$out" connected)" "$(jq_get "$out" rss_per_stream_bytes)" "$(jq_get "$out" cpu_idle_pct)" \
    "$(jq_get "$out" latency_ms.p50)" "$(jq_get "$out" latency_ms.p99)" "$(jq_get "$out" streams_missing_marks)" \
    "$(jq_get "$out" cpu_per_event_us)" "$(jq_get "$out" cpu_hold_pct)" >>"$STREAM_TSV"
}
if [ "$DO_STREAMS" = 1 ]; then
  for n in $STREAMS; do
    d="$TMP/streams-$n"
    mkdir -p "$d"
    start_logcast "$d"
    sleep 0.5
    stream_run logcast "$n" "$LC_URL" "$d/logs" "$LC_PID"
    stop_pid "$LC_PID"
    if [ "$DO_FLOOR" = 1 ]; then run_floor "$n"; fi
    for p in "${PEER_NAMES[@]+"${PEER_NAMES[@]}"}"; do
      [ -n "${PEER_LOGDIR[$p]}" ] || continue
      stream_run "$p" "$n" "${PEER_URL[$p]}" "${PEER_LOGDIR[$p]}" "${PEER_PID[$p]}"
    done
  done
fi

if [ "$DO_FLOOR" = 1 ] && [ "$DO_STREAMS" = 0 ]; then
  for n in $STREAMS; do run_floor "$n"; done
fi

# ---- tables --------------------------------------------------------------------
python3 - "$HTTP_TSV" "$STREAM_TSV" "$FLOOR_TSV" "$DURATION" "$CONNS" "$HOLD" "$RATE" "$IDLE" <<'PY'
import sys
http_tsv, stream_tsv, floor_tsv, dur, conns, hold, rate, idle = sys.argv[1:9]

def num(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None

def ratio(v, base):
    v, base = num(v), num(base)
    if v is None or base in (None, 0):
        return ""
    return "(%.2fx)" % (v / base)

# HTTP: rows endpoint/tool/pipelined, columns servers
rows = [l.rstrip("\n").split("\t") for l in open(http_tsv) if l.strip()]
if rows:
    servers = []
    for r in rows:
        if r[0] not in servers:
            servers.append(r[0])
    keys = []
    data = {}
    for label, ep, tool, pipe, rps, p50, p99, se, nx in rows:
        k = (ep, tool, pipe)
        if k not in keys:
            keys.append(k)
        data[(label, k)] = (rps, p99, se, nx)
    print()
    print("HTTP req/s (p99 ms) [socket errors/non-2xx], %s s per run, %s connections, servers on CPU 0, load on CPU 1; ratio = server / logcast" % (dur, conns))
    head = "%-22s %-4s %-5s" % ("endpoint", "tool", "pipe")
    for s in servers:
        head += " %34s" % s
    print(head)
    for k in keys:
        line = "%-22s %-4s %-5s" % ("GET " + k[0], k[1], k[2])
        base = data.get(("logcast", k), ("",))[0]
        for s in servers:
            v = data.get((s, k))
            if v is None:
                line += " %34s" % "-"
                continue
            rps, p99, se, nx = v
            cell = "%s (%s) %s [%s/%s]" % (rps, p99, "" if s == "logcast" else ratio(rps, base), se, nx)
            line += " %34s" % cell.replace("  ", " ")
        print(line)

srows = [l.rstrip("\n").split("\t") for l in open(stream_tsv) if l.strip()]
lc_event_us = {}
if srows:
    print()
    print("Streams: one log, idle %s s, then marks at %s/s for %s s; ratio = server / logcast" % (idle, rate, hold))
    servers = []
    for r in srows:
        if r[0] not in servers:
            servers.append(r[0])
    by = {(r[0], r[1]): r for r in srows}
    sizes = []
    for r in srows:
        if r[1] not in sizes:
            sizes.append(r[1])
    metrics = [
        ("connected", 2), ("RSS B/stream", 3), ("idle CPU %", 4), ("latency p50 ms", 5),
        ("latency p99 ms", 6), ("streams missing marks", 7), ("CPU us/event", 8), ("CPU % during marks", 9),
    ]
    head = "%-8s %-22s" % ("streams", "metric")
    for s in servers:
        head += " %22s" % s
    print(head)
    for n in sizes:
        for name, i in metrics:
            line = "%-8s %-22s" % (n, name)
            base = by.get(("logcast", n), [None] * 10)[i]
            for s in servers:
                r = by.get((s, n))
                if r is None or r[i] == "":
                    line += " %22s" % "-"
                    continue
                cell = r[i] if s == "logcast" else "%s %s" % (r[i], ratio(r[i], base))
                line += " %22s" % cell
            print(line)
        r = by.get(("logcast", n))
        if r and num(r[8]):
            lc_event_us[n] = num(r[8])

floors = [l.rstrip("\n").split("\t") for l in open(floor_tsv) if l.strip()]
if floors:
    print()
    print("Server CPU per delivered event vs the kernel floor: write-floor, one ~100-byte write() to each of N")
    print("established loopback sockets, 20 rounds 500 ms apart, on CPU 0, measured right after logcast's run:")
    print("%-8s %18s %22s %24s %10s %12s" % ("streams", "logcast us/event", "floor us (no reader)", "floor us (epoll reader)", "ratio", "ratio (rdr)"))
    for n, f0, f1 in floors:
        us = lc_event_us.get(n)
        r0 = "%.2fx" % (us / num(f0)) if us and num(f0) else "-"
        r1 = "%.2fx" % (us / num(f1)) if us and num(f1) else "-"
        print("%-8s %18s %22s %24s %10s %12s" % (n, "%.2f" % us if us else "-", f0 or "-", f1 or "-", r0, r1))
PY
