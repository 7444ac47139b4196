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
#     a fresh server per size: RSS per stream, idle CPU, then marks at 2/s:
#     marker latency p50/p99, missed marks, server CPU per delivered event.
#     Servers: logcast with each --workers count (1: on CPU 0; more: not
#     pinned, its workers need both cores; label logcast-wN), nginx+nchan with
#     one worker on CPU 0 (scripts/nchan.conf.tmpl: the streams subscribe to
#     /sub/<channel> as EventSource, each mark is POSTed to /pub/<channel> at
#     the moment it would be appended to logcast's log, so the latencies
#     compare; its CPU is its worker's, from /proc), and each --peer that
#     gives a logdir.
#  3. The kernel floor, right after each logcast stream test: write-floor (one
#     ~100-byte write to each of N loopback sockets, on CPU 0), with a client
#     that never reads and with one reading through epoll on CPU 1, next to
#     each server's CPU per delivered event.
#  Then prints side-by-side tables with ratios against logcast, and the
#  command of every run, and writes report.html beside them: one
#  self-contained page (inline SVG, no script, no external asset; made by
#  scripts/report.py) with each implementation's latency CDF, user memory per
#  stream and CPU per event against the kernel floor. Results (tables, JSON,
#  commands, report.html) are kept in /tmp/logcast-compare.XXXXXX/ (logs and
#  other work files only with --keep).
#
# usage: scripts/compare.sh [options]
#   --duration SECS        per HTTP run (default 10)
#   --connections N        HTTP connections (default 50)
#   --tools "wrk oha"      HTTP load tools (default both)
#   --streams "N ..."      stream counts (default "1000 10000")
#   --hold SECS            marks are written for this long (default 20)
#   --idle-secs SECS       idle CPU window before the marks (default 30: two
#                          heartbeat periods, so that the keepalives are counted)
#   --mark-rate R          marks per second (default 2)
#   --workers "1 2"        logcast --workers counts for the stream tests (default "1 2")
#   --watch MODE           pass --watch MODE to every logcast (default: none given)
#   --bin PATH             the logcast to test (default target/release/logcast)
#   --no-nchan             no nginx+nchan stream peer (installed with apt when missing:
#                          nginx, libnginx-mod-nchan)
#   --peer NAME=BASEURL[,logdir=DIR][,pid=PID[:PID..]]
#                          another implementation, already running; with logdir
#                          (its log dir, where the mark file is created) it is
#                          also stream-tested, with pid its RSS and CPU are read
#   --no-nginx             skip nginx
#   --skip-http | --skip-streams | --skip-floor
#   --build                cargo build --release first (default: only if a binary is missing)
#   --keep                 keep the work files too (logs, nginx dirs)
#   -h, --help
# Everything it starts is stopped on exit; every step is bounded by `timeout`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REL="$ROOT/target/release"

DURATION=10
CONNS=50
TOOLS="wrk oha"
STREAMS="1000 10000"
HOLD=20
IDLE=30
RATE=2
PEERS=()
LC_WORKERS="1 2"
WATCH=""
BIN=""
NCHAN=1
NGINX=1
DO_HTTP=1
DO_STREAMS=1
DO_FLOOR=1
BUILD=0
KEEP=0

die() { echo "compare: $*" >&2; exit 1; }
say() { echo "compare: $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --tools) TOOLS="$2"; shift 2 ;;
    --streams) STREAMS="$2"; shift 2 ;;
    --hold) HOLD="$2"; shift 2 ;;
    --idle-secs) IDLE="$2"; shift 2 ;;
    --mark-rate) RATE="$2"; shift 2 ;;
    --peer) PEERS+=("$2"); shift 2 ;;
    --workers) LC_WORKERS="$2"; shift 2 ;;
    --watch) WATCH="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --no-nchan) NCHAN=0; shift ;;
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
for w in $LC_WORKERS; do
  [[ "$w" =~ ^[1-9][0-9]*$ ]] || { echo "compare: --workers: whole numbers >= 1: '$w'" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (server on CPU 0, load on CPU 1)"

# RES: results, kept; TMP: work files (logs, nginx), removed unless --keep
results_dir compare
TMP="$WORK"

# ---- prerequisites -----------------------------------------------------------
need_tool curl
need_tool python3
need_tool taskset util-linux
NGINX_BIN=""
if [ "$NGINX" = 1 ] || [ "$NCHAN" = 1 ]; then NGINX_BIN="$(nginx_bin)"; fi
if [ -z "$NGINX_BIN" ]; then
  [ "$NGINX" = 1 ] && say "no nginx: skipped"
  NGINX=0
  NCHAN=0
fi
if [ "$NCHAN" = 1 ] && [ "$DO_STREAMS" = 1 ] && [ -z "$(nchan_module)" ]; then
  say "no nchan module: nchan skipped"
  NCHAN=0
fi

if [ "$DO_HTTP" = 1 ]; then
  case " $TOOLS " in *" wrk "*)
    command -v wrk >/dev/null || { say "installing wrk (apt)"; apt_install wrk || say "cannot install wrk"; } ;;
  esac
  case " $TOOLS " in *" oha "*) OHA="$(find_oha)" ;; esac
fi

release_bins
LC_ARGS=()
if [ -n "$WATCH" ]; then
  logcast_has_watch "$BIN" || die "--watch $WATCH: $BIN has no --watch option"
  LC_ARGS=(--watch "$WATCH")
fi

CMDS="$RES/commands.txt"
: >"$CMDS"
echo "$(date -u +%FT%TZ) · $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(awk '$1 == "MemTotal:" { printf "%.0f", $2 / 1048576 }' /proc/meminfo) GiB, Linux $(uname -r)" >"$RES/machine.txt"
NCMD=0
note_cmd() { # note_cmd WHAT SERVER_CMD RUN_CMD: numbers a run in commands.txt, sets CMD_NO
  NCMD=$((NCMD + 1))
  CMD_NO="$NCMD"
  {
    printf '[%d] %s\n' "$NCMD" "$1"
    [ -n "$2" ] && printf '    server: %s\n' "$2"
    printf '    run:    %s\n' "$3"
  } >>"$CMDS"
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
HTTP_TSV="$RES/http.tsv"
: >"$HTTP_TSV"
if [ "$DO_HTTP" = 1 ]; then
  mkdir -p "$TMP/http"
  start_logcast "$TMP/http" 0 "$BIN" "${LC_ARGS[@]+"${LC_ARGS[@]}"}"
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
    NG_CMD="taskset -c 0 $NGINX_BIN -p $TMP/nginx/ -c $TMP/nginx/nginx.conf"
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
    case "$s" in logcast) scmd="$LC_CMD" ;; nginx) scmd="$NG_CMD" ;; *) scmd="" ;; esac
    note_cmd "HTTP $s" "$scmd" \
      "scripts/loadtest.sh --url $url ${idarg[*]+${idarg[*]}} --duration $DURATION --connections $CONNS --tools '$TOOLS' --load-cpu 1 --label $s"
    timeout $((DURATION * 12 + 600)) "$ROOT/scripts/loadtest.sh" --url "$url" "${idarg[@]+"${idarg[@]}"}" \
      --duration "$DURATION" --connections "$CONNS" --tools "$TOOLS" --load-cpu 1 --label "$s" --tsv "$HTTP_TSV" >&2 \
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
FLOOR_TSV="$RES/floor.tsv"
: >"$FLOOR_TSV"
run_floor() { # N
  local n="$1" s a b
  s=$((n > 19000 ? 19000 : n))
  a="timeout 300 taskset -c 0 $REL/write-floor --sockets $s --rounds 20 --pause-ms 500 --json"
  b="timeout 300 taskset -c 0 $REL/write-floor --sockets $s --rounds 20 --pause-ms 500 --drain --client-cpu 1 --json"
  say "write-floor: $s sockets, 20 rounds, on CPU 0, client never reading"
  $a >"$RES/floor-$n.json" || true
  note_cmd "floor $n, client never reading" "" "$a"
  say "write-floor: the same, client reading with epoll on CPU 1"
  $b >"$RES/floor-drain-$n.json" || true
  note_cmd "floor $n, client reading on CPU 1" "" "$b"
  printf '%s\t%s\t%s\n' "$n" "$(jq_get "$RES/floor-$n.json" cpu_us_per_write)" \
    "$(jq_get "$RES/floor-drain-$n.json" cpu_us_per_write)" >>"$FLOOR_TSV"
}

# ---- 2. streams ----------------------------------------------------------------
STREAM_TSV="$RES/streams.tsv"
: >"$STREAM_TSV"
# stream_run LABEL N SERVER_CMD PIDS PIDTREE LOADER_ARGS...: logcast-load on CPU 1
# with N streams, the idle window and the marks, plus LOADER_ARGS (the URL and
# where the marks go)
stream_run() {
  local label="$1" n="$2" scmd="$3" pids="$4" tree="$5" procs out cmd
  shift 5
  procs=1
  [ "$n" -gt 5000 ] && procs=2
  out="$RES/$label-$n.json"
  cmd=(timeout $((n / 1000 + IDLE + HOLD + 180)) taskset -c 1 "$REL/logcast-load"
    "$@" --streams "$n" --processes "$procs" --ramp 5000 --hold "$HOLD" --idle-secs "$IDLE"
    --mark-rate "$RATE" --expect-marks ${pids:+--pid "$pids"})
  [ "$tree" = 1 ] && cmd+=(--pid-tree)
  cmd+=(--json)
  say "streams: $label, $n streams, idle ${IDLE}s, marks at $RATE/s for ${HOLD}s"
  "${cmd[@]}" >"$out" 2>"$RES/$label-$n.err" || true
  note_cmd "streams $label $n" "$scmd" "${cmd[*]}"
  tail -n 14 "$RES/$label-$n.err" >&2 || true
  if [ ! -s "$out" ]; then say "logcast-load against $label failed"; rm -f "$out"; return; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "$n" \
    "$(jq_get "$out" connected)" "$(jq_get "$out" rss_per_stream_bytes)" "$(jq_get "$out" cpu_idle_pct)" \
    "$(jq_get "$out" latency_ms.p50)" "$(jq_get "$out" latency_ms.p99)" "$(jq_get "$out" streams_missing_marks)" \
    "$(jq_get "$out" cpu_per_event_us)" "$(jq_get "$out" cpu_hold_pct)" "$CMD_NO" >>"$STREAM_TSV"
}
if [ "$DO_STREAMS" = 1 ]; then
  for n in $STREAMS; do
    name="compare-$n-$$"
    for w in $LC_WORKERS; do
      d="$TMP/streams-$n-w$w"
      mkdir -p "$d"
      if [ "$w" = 1 ]; then
        label=logcast
        start_logcast "$d" 0 "$BIN" "${LC_ARGS[@]+"${LC_ARGS[@]}"}"
      else
        # not pinned: the workers share both cores (and CPU 1 with the load)
        label="logcast-w$w"
        start_logcast "$d" "" "$BIN" --workers "$w" "${LC_ARGS[@]+"${LC_ARGS[@]}"}"
      fi
      sleep 0.5
      stream_run "$label" "$n" "$LC_CMD" "$LC_PID" "$([ "$w" = 1 ] && echo 0 || echo 1)" \
        --url "$LC_URL/api/logs/$name/stream" --mark-file "$d/logs/$name.log"
      stop_pid "$LC_PID"
      if [ "$w" = 1 ] && [ "$DO_FLOOR" = 1 ]; then run_floor "$n"; fi
    done
    if [ "$NCHAN" = 1 ]; then
      start_nchan "$TMP/nchan-$n" 0
      sleep 0.5
      stream_run nchan "$n" "$NCH_CMD" "$NCH_PID" 1 \
        --url "$NCH_URL/sub/$name" --publish-url "$NCH_URL/pub/$name"
      stop_pid "$NCH_PID"
    fi
    for p in "${PEER_NAMES[@]+"${PEER_NAMES[@]}"}"; do
      [ -n "${PEER_LOGDIR[$p]}" ] || continue
      stream_run "$p" "$n" "" "${PEER_PID[$p]}" 0 \
        --url "${PEER_URL[$p]}/api/logs/$name/stream" --mark-file "${PEER_LOGDIR[$p]}/$name.log"
      rm -f "${PEER_LOGDIR[$p]}/$name.log"
    done
  done
fi

if [ "$DO_FLOOR" = 1 ] && [ "$DO_STREAMS" = 0 ]; then
  for n in $STREAMS; do run_floor "$n"; done
fi

# ---- tables --------------------------------------------------------------------
python3 - "$HTTP_TSV" "$STREAM_TSV" "$FLOOR_TSV" "$DURATION" "$CONNS" "$HOLD" "$RATE" "$IDLE" "$CMDS" <<'PY' | tee "$RES/results.txt"
import sys
http_tsv, stream_tsv, floor_tsv, dur, conns, hold, rate, idle, cmds = sys.argv[1:10]

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
event_us = {}
if srows:
    print()
    print("Streams: one log, idle %s s, then marks at %s/s for %s s; ratio = server / logcast" % (idle, rate, hold))
    print("(logcast: 1 worker on CPU 0; logcast-wN: --workers N, not pinned; nchan: nginx+nchan, 1 worker on CPU 0;")
    print(" load on CPU 1; [n]: the command, listed below)")
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
        ("command", 10),
    ]
    head = "%-8s %-22s" % ("streams", "metric")
    for s in servers:
        head += " %22s" % s
    print(head)
    for n in sizes:
        for name, i in metrics:
            line = "%-8s %-22s" % (n, name)
            base = by.get(("logcast", n), [None] * 11)[i]
            for s in servers:
                r = by.get((s, n))
                if r is None or len(r) <= i or r[i] == "":
                    line += " %22s" % "-"
                    continue
                if name == "command":
                    cell = "[%s]" % r[i]
                elif s == "logcast" or name == "streams missing marks":
                    cell = r[i]
                else:
                    cell = "%s %s" % (r[i], ratio(r[i], base))
                line += " %22s" % cell
            print(line)
        for s in servers:
            r = by.get((s, n))
            if r and num(r[8]):
                event_us[(s, n)] = num(r[8])

floors = [l.rstrip("\n").split("\t") for l in open(floor_tsv) if l.strip()]
if floors:
    servers = []
    for (s, n) in event_us:
        if s not in servers:
            servers.append(s)
    print()
    print("Server CPU per delivered event vs the kernel floor: write-floor, one ~100-byte write() to each of N")
    print("established loopback sockets, 20 rounds 500 ms apart, on CPU 0, measured right after logcast's run;")
    print("each server's us/event (its ratio to the floor with an epoll reader / to the floor with no reader):")
    head = "%-8s %12s %12s" % ("streams", "floor (rdr)", "floor (none)")
    for s in servers:
        head += " %28s" % s
    print(head)
    for n, f0, f1 in floors:
        line = "%-8s %12s %12s" % (n, f1 or "-", f0 or "-")
        for s in servers:
            us = event_us.get((s, n))
            if not us:
                line += " %28s" % "-"
                continue
            r1 = "%.2fx" % (us / num(f1)) if num(f1) else "-"
            r0 = "%.2fx" % (us / num(f0)) if num(f0) else "-"
            line += " %28s" % ("%.2f (%s / %s)" % (us, r1, r0))
        print(line)

print()
print("commands:")
print(open(cmds).read(), end="")
PY

# ---- the pictures ---------------------------------------------------------------
if python3 "$ROOT/scripts/report.py" "$RES" >"$RES/report.html"; then
  say "report: $RES/report.html"
else
  say "report.py failed"
fi
