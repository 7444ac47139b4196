#!/usr/bin/env bash
# Change-driven tails: latency from write to receipt and CPU per delivered
# line, logcast with each --watch mode side by side in one run, nginx+nchan
# (one worker) and the kernel's write floor (write-floor) beside them.
#
#  a. One viewer of one log, p50/p99 from write to receipt:
#     (i)  logcast's own simulated writer (POST /api/logs, the daemon started
#          with --write-interval-ms A_WRITE_MS): the viewer connects with
#          ?tail=0 and times the lines that carry their time of writing, i.e.
#          `[<RFC 3339>] <sentence>` (1 line in 4) against their stamp
#          (logcast-load --time-lines; the stamp has ms resolution and is
#          truncated, so a latency reads 0..1 ms high);
#     (ii) an external writer appending `MARK <unix-ns> <seq>` lines to a file
#          in the log dir at A_RATE lines/s for A_HOLD s (each at a random
#          point of its period); nchan: the same marks POSTed to its publisher.
#  b. B_LOGS logs x 1 stream each, one line per log every 1/B_RATE s
#     (B_LOGS x B_RATE lines/s in all, spread at random): p50/p99, daemon CPU
#     per delivered line, beside write-floor over B_LOGS sockets with the
#     writes spread over time (one at a time, wake-ups included) and in bursts.
#  c. C_STREAMS streams of one log at each of C_RATES lines/s for C_HOLD s:
#     daemon CPU per delivered line (and p50/p99), beside the burst floor over
#     C_STREAMS sockets; "sent/s" is the rate the marks really went out at.
#     nchan's hold is cut to 2,000 marks at high rates: it fans out each
#     publish on its own (1,000/s to 1,000 streams is more than one core), so
#     its backlog, and the time to drain it, grows with the hold.
#  d. N distinct logs with one stream each, for each N in D_LOGS: idle CPU over
#     D_IDLE s (two heartbeat periods by default), RSS per stream, then one line
#     to every log spread over D_HOLD s: every line to every stream, p99.
#     Engines that hold a descriptor per followed log cannot go past ~9,950
#     logs under the 20,000-file cap: 9,000 is the largest N they take.
#
# Every logcast run is a fresh daemon per (step, --watch mode); --watch MODE
# is passed through (modes from --watch; a binary without --watch has one
# mode, its 100 ms stat poll, shown as "default"). Daemons and nchan run on
# CPU 0, logcast-load on CPU 1, write-floor on CPU 0 with its reading client
# on CPU 1.
#
# usage: scripts/bench-latency.sh [options]
#   --steps "a b c d"      which benches (default all)
#   --watch "auto poll"    --watch modes to compare (default "auto poll" when the
#                          binary has --watch, else "default": no --watch given)
#   --bin PATH             the logcast to test (default target/release/logcast)
#   --no-nchan             no nchan rows        --no-floor   no write-floor rows
#   --a-rate R             a(ii) lines/s (default 20)     --a-hold S  (default 20)
#   --a-write-ms MS        a(i) simulated writer period (default 50: 20 lines/s)
#   --b-logs N             (default 1000)   --b-rate R per log (default 0.5)
#   --b-hold S             (default 20)
#   --c-streams N          (default 1000)   --c-rates "1 10 100 1000"
#   --c-hold S             per rate (default 10)
#   --d-logs "N ..."       (default "1000 9000"; 19000 for an engine without a
#                          descriptor per log)
#   --d-idle S             (default 30)     --d-hold S (default 10)
#   --build                cargo build --release first (default: only if a binary is missing)
#   --keep                 also keep the log dirs (the results are always kept)
#   -h, --help
# Results: a table per step with the command of every row, in
# /tmp/logcast-bench.XXXXXX/results.txt, with each run's JSON (logcast-load
# --json, write-floor --json) and stderr beside it. Everything it starts is
# stopped on exit; every step is bounded by `timeout`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REL="$ROOT/target/release"

STEPS="a b c d"
MODES=""
BIN=""
NCHAN=1
FLOOR=1
A_RATE=20
A_HOLD=20
A_WRITE_MS=50
B_LOGS=1000
B_RATE=0.5
B_HOLD=20
C_STREAMS=1000
C_RATES="1 10 100 1000"
C_HOLD=10
D_LOGS="1000 9000"
D_IDLE=30
D_HOLD=10
BUILD=0
KEEP=0

die() { echo "bench-latency: $*" >&2; exit 1; }
say() { echo "bench-latency: $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --steps) STEPS="$2"; shift 2 ;;
    --watch) MODES="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --no-nchan) NCHAN=0; shift ;;
    --no-floor) FLOOR=0; shift ;;
    --a-rate) A_RATE="$2"; shift 2 ;;
    --a-hold) A_HOLD="$2"; shift 2 ;;
    --a-write-ms) A_WRITE_MS="$2"; shift 2 ;;
    --b-logs) B_LOGS="$2"; shift 2 ;;
    --b-rate) B_RATE="$2"; shift 2 ;;
    --b-hold) B_HOLD="$2"; shift 2 ;;
    --c-streams) C_STREAMS="$2"; shift 2 ;;
    --c-rates) C_RATES="$2"; shift 2 ;;
    --c-hold) C_HOLD="$2"; shift 2 ;;
    --d-logs) D_LOGS="$2"; shift 2 ;;
    --d-idle) D_IDLE="$2"; shift 2 ;;
    --d-hold) D_HOLD="$2"; shift 2 ;;
    --build) BUILD=1; shift ;;
    --keep) KEEP=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "bench-latency: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for s in $STEPS; do
  case "$s" in a|b|c|d) ;; *) echo "bench-latency: --steps: unknown step '$s' (a b c d)" >&2; exit 2 ;; esac
done
isnum() { [[ "$1" =~ ^[0-9]+([.][0-9]+)?$ ]]; }
for v in "$A_RATE" "$A_HOLD" "$A_WRITE_MS" "$B_LOGS" "$B_RATE" "$B_HOLD" "$C_STREAMS" "$C_HOLD" "$D_IDLE" "$D_HOLD" $C_RATES $D_LOGS; do
  isnum "$v" || { echo "bench-latency: not a number: '$v'" >&2; exit 2; }
done
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (servers on CPU 0, load on CPU 1)"

results_dir bench

# ---- prerequisites -----------------------------------------------------------
need_tool curl
need_tool python3
need_tool taskset util-linux
release_bins
if logcast_has_watch "$BIN"; then
  MODES="${MODES:-auto poll}"
else
  if [ -n "$MODES" ] && [ "$MODES" != default ]; then
    die "--watch $MODES: $BIN has no --watch option (run without --watch to measure its only mode)"
  fi
  MODES=default
  say "$BIN has no --watch: measuring its only mode (the stat poll) as \"default\""
fi
if [ "$NCHAN" = 1 ] && [ -z "$(nchan_module)" ]; then
  say "nginx+nchan not available: no nchan rows"
  NCHAN=0
fi
watch_args() { if [ "$1" != default ]; then echo "--watch $1"; fi; }

ROWS="$RES/rows.tsv"     # step  server  mode  param  json  cmd#
CMDS="$RES/commands.txt" # [cmd#] lines
: >"$ROWS"
: >"$CMDS"
NCMD=0
LOAD="$REL/logcast-load"

# record STEP SERVER MODE PARAM JSON "SERVER CMD" "LOAD CMD"
record() {
  NCMD=$((NCMD + 1))
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" "$NCMD" >>"$ROWS"
  {
    printf '[%d] %s %s %s %s\n' "$NCMD" "$1" "$2" "$3" "$4"
    [ -n "$6" ] && printf '    server: %s\n' "$6"
    printf '    run:    %s\n' "$7"
  } >>"$CMDS"
}

# load STEP SERVER MODE PARAM TIMEOUT SERVER_CMD ARGS...: runs logcast-load
# on CPU 1 with ARGS and --json, records the row.
load() {
  local step="$1" server="$2" mode="$3" param="$4" t="$5" scmd="$6" name out
  shift 6
  name="$step-$server-$mode-$param"
  name="${name//[^A-Za-z0-9._-]/_}"
  out="$RES/$name.json"
  say "$step: $server ($mode) $param"
  timeout "$t" taskset -c 1 "$LOAD" "$@" --json >"$out" 2>"$RES/$name.err" || true
  grep -E '^  (streams|marks|latency|daemon CPU) ' "$RES/$name.err" >&2 || tail -n 5 "$RES/$name.err" >&2
  [ -s "$out" ] || { say "$step: logcast-load against $server failed (see $RES/$name.err)"; rm -f "$out"; }
  record "$step" "$server" "$mode" "$param" "$out" "$scmd" "timeout $t taskset -c 1 $LOAD $* --json"
}

# floor STEP PARAM ARGS...: write-floor on CPU 0 with ARGS, recorded
floor() {
  local step="$1" param="$2" name out
  shift 2
  name="${step}-floor-$param"
  out="$RES/${name//[^A-Za-z0-9._-]/_}.json"
  say "$step: write-floor $*"
  timeout 300 taskset -c 0 "$REL/write-floor" "$@" --json >"$out" 2>"$RES/${name//[^A-Za-z0-9._-]/_}.err" || true
  [ -s "$out" ] || { say "$step: write-floor failed"; rm -f "$out"; }
  record "$step" floor - "$param" "$out" "" "timeout 300 taskset -c 0 $REL/write-floor $* --json"
}

ramp_secs() { echo $(($1 / 5000 + 1)); }

# ---- a. one viewer of one log ------------------------------------------------
step_a() {
  local mode d id t
  t=$((A_HOLD + 120))
  for mode in $MODES; do
    # (i) logcast's own writer
    d="$WORK/a1-$mode"
    # shellcheck disable=SC2046
    start_logcast "$d" 0 "$BIN" --write-interval-ms "$A_WRITE_MS" $(watch_args "$mode")
    id="$(curl -sS --max-time 5 -X POST "$LC_URL/api/logs?duration=$((A_HOLD + 15))" |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["log_id"])')" || die "POST /api/logs failed"
    load a-own logcast "$mode" "$((1000 / A_WRITE_MS))/s" "$t" "$LC_CMD; curl -X POST '$LC_URL/api/logs?duration=$((A_HOLD + 15))'" \
      --url "$LC_URL/api/logs/$id/stream?tail=0" --streams 1 --hold "$A_HOLD" --time-lines --pid "$LC_PID"
    stop_pid "$LC_PID"
    # (ii) an external writer
    d="$WORK/a2-$mode"
    # shellcheck disable=SC2046
    start_logcast "$d" 0 "$BIN" $(watch_args "$mode")
    load a-file logcast "$mode" "$A_RATE/s" "$t" "$LC_CMD" \
      --url "$LC_URL/api/logs/ext/stream" --streams 1 --hold "$A_HOLD" --mark-rate "$A_RATE" \
      --mark-file "$d/logs/ext.log" --pid "$LC_PID"
    stop_pid "$LC_PID"
  done
  if [ "$NCHAN" = 1 ]; then
    start_nchan "$WORK/a-nchan" 0
    load a-file nchan - "$A_RATE/s" "$t" "$NCH_CMD" \
      --url "$NCH_URL/sub/ext" --streams 1 --hold "$A_HOLD" --mark-rate "$A_RATE" \
      --publish-url "$NCH_URL/pub/ext" --pid "$NCH_PID" --pid-tree
    stop_pid "$NCH_PID"
  fi
}

# ---- b. many logs, one stream each ---------------------------------------------
step_b() {
  local mode d t
  t=$(($(ramp_secs "$B_LOGS") + B_HOLD + 150))
  for mode in $MODES; do
    d="$WORK/b-$mode"
    mkdir -p "$d/logs"
    make_logs "$d/logs" "$B_LOGS" b-
    # shellcheck disable=SC2046
    start_logcast "$d" 0 "$BIN" $(watch_args "$mode")
    sleep 0.5
    load b logcast "$mode" "$B_LOGS" "$t" "$LC_CMD" \
      --url "$LC_URL/api/logs/b-{i}/stream" --logs "$B_LOGS" --streams "$B_LOGS" --ramp 5000 \
      --hold "$B_HOLD" --mark-rate "$B_RATE" --mark-file "$d/logs/b-{i}.log" --drain-ms 2000 --pid "$LC_PID"
    stop_pid "$LC_PID"
  done
  if [ "$NCHAN" = 1 ]; then
    start_nchan "$WORK/b-nchan" 0
    load b nchan - "$B_LOGS" "$t" "$NCH_CMD" \
      --url "$NCH_URL/sub/b-{i}" --logs "$B_LOGS" --streams "$B_LOGS" --ramp 5000 \
      --hold "$B_HOLD" --mark-rate "$B_RATE" --publish-url "$NCH_URL/pub/b-{i}" --drain-ms 2000 \
      --pid "$NCH_PID" --pid-tree
    stop_pid "$NCH_PID"
  fi
  if [ "$FLOOR" = 1 ]; then
    local n="$B_LOGS" period rounds
    n=$((n > 19000 ? 19000 : n))
    period="$(python3 -c "print(int(1000 / float('$B_RATE')))")"
    rounds="$(python3 -c "print(max(2, int(10 * float('$B_RATE'))))")"
    floor b spread --sockets "$n" --spread --pause-ms "$period" --rounds "$rounds" --drain --client-cpu 1
    floor b burst --sockets "$n" --rounds 20 --pause-ms 500 --drain --client-cpu 1
  fi
}

# ---- c. one log, many streams, rising write rates -------------------------------
step_c() {
  local mode d rate t hold procs=1
  [ "$C_STREAMS" -gt 5000 ] && procs=2
  for mode in $MODES; do
    for rate in $C_RATES; do
      d="$WORK/c-$mode-$rate"
      # shellcheck disable=SC2046
      start_logcast "$d" 0 "$BIN" $(watch_args "$mode")
      sleep 0.5
      t=$(($(ramp_secs "$C_STREAMS") + C_HOLD * 3 + 150))
      load c logcast "$mode" "$rate" "$t" "$LC_CMD" \
        --url "$LC_URL/api/logs/c/stream" --streams "$C_STREAMS" --processes "$procs" --ramp 5000 \
        --hold "$C_HOLD" --mark-rate "$rate" --mark-file "$d/logs/c.log" --drain-ms 3000 --pid "$LC_PID"
      stop_pid "$LC_PID"
    done
  done
  if [ "$NCHAN" = 1 ]; then
    for rate in $C_RATES; do
      hold="$(python3 -c "print(min(float('$C_HOLD'), 2000 / float('$rate')))")"
      start_nchan "$WORK/c-nchan-$rate" 0
      t=$(($(ramp_secs "$C_STREAMS") + C_HOLD * 10 + 150))
      load c nchan - "$rate" "$t" "$NCH_CMD" \
        --url "$NCH_URL/sub/c" --streams "$C_STREAMS" --processes "$procs" --ramp 5000 \
        --hold "$hold" --mark-rate "$rate" --publish-url "$NCH_URL/pub/c" --drain-ms 3000 \
        --pid "$NCH_PID" --pid-tree
      stop_pid "$NCH_PID"
    done
  fi
  if [ "$FLOOR" = 1 ]; then
    floor c burst --sockets "$((C_STREAMS > 19000 ? 19000 : C_STREAMS))" --rounds 20 --pause-ms 500 --drain --client-cpu 1
  fi
}

# ---- d. idle CPU, one stream per log -----------------------------------------------
step_d() {
  local mode d n t rate
  rate="$(python3 -c "print(1 / float('$D_HOLD'))")"
  for n in $D_LOGS; do
    t=$(($(ramp_secs "$n") * 3 + D_IDLE + D_HOLD + 180))
    for mode in $MODES; do
      d="$WORK/d-$mode-$n"
      mkdir -p "$d/logs"
      make_logs "$d/logs" "$n" d-
      # shellcheck disable=SC2046
      start_logcast "$d" 0 "$BIN" $(watch_args "$mode")
      sleep 1
      load d logcast "$mode" "$n" "$t" "$LC_CMD" \
        --url "$LC_URL/api/logs/d-{i}/stream" --logs "$n" --streams "$n" --ramp 5000 \
        --idle-secs "$D_IDLE" --hold "$D_HOLD" --mark-rate "$rate" --mark-file "$d/logs/d-{i}.log" \
        --drain-ms 2000 --pid "$LC_PID"
      stop_pid "$LC_PID"
      [ "$KEEP" = 1 ] || rm -rf "$d"
    done
    if [ "$NCHAN" = 1 ]; then
      start_nchan "$WORK/d-nchan-$n" 0
      load d nchan - "$n" "$t" "$NCH_CMD" \
        --url "$NCH_URL/sub/d-{i}" --logs "$n" --streams "$n" --ramp 5000 \
        --idle-secs "$D_IDLE" --hold "$D_HOLD" --mark-rate "$rate" --publish-url "$NCH_URL/pub/d-{i}" \
        --drain-ms 2000 --pid "$NCH_PID" --pid-tree
      stop_pid "$NCH_PID"
    fi
  done
}

say "logcast $BIN ($("$BIN" --version 2>/dev/null || echo '?')), modes: $MODES; results in $RES"
for s in $STEPS; do "step_$s"; done

# ---- tables --------------------------------------------------------------------
python3 - "$ROWS" "$CMDS" "$MODES" >"$RES/results.txt" <<'PY'
import json, sys

rows_tsv, cmds_txt, modes = sys.argv[1:4]
rows = []
for line in open(rows_tsv):
    if not line.strip():
        continue
    step, server, mode, param, path, n = line.rstrip("\n").split("\t")
    try:
        d = json.load(open(path))
    except Exception:
        d = None
    rows.append(dict(step=step, server=server, mode=mode, param=param, d=d, n=n))

def g(d, *ks):
    for k in ks:
        d = d.get(k) if isinstance(d, dict) else None
    return d

def f(v, fmt="%.1f"):
    return "-" if v is None else fmt % v

def label(r):
    return r["server"] if r["mode"] in ("-", "default") else "%s --watch %s" % (r["server"], r["mode"])

def table(title, head, lines):
    print()
    print(title)
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)] if lines else [len(h) for h in head]
    fmt = "  ".join("%%-%ds" % w if i == 0 else "%%%ds" % w for i, w in enumerate(widths))
    print(fmt % tuple(head))
    for l in lines:
        print(fmt % tuple(l))

def lat(d):
    return [f(g(d, "latency_ms", "p50")), f(g(d, "latency_ms", "p99")), f(g(d, "latency_ms", "max")),
            str(g(d, "latency_ms", "count") if d else "-")]

def recv(d):
    if not d:
        return "failed"
    return "%s/%s" % (d.get("marks_received"), d.get("marks_expected"))

floors = {(r["step"], r["param"]): g(r["d"], "cpu_us_per_write") for r in rows if r["server"] == "floor"}

print("bench-latency: logcast modes %s; servers on CPU 0, logcast-load on CPU 1" % modes)

sel = [r for r in rows if r["step"] in ("a-own", "a-file")]
if sel:
    lines = []
    for r in sel:
        d = r["d"]
        writer = "logcast's writer (stamped lines)" if r["step"] == "a-own" else ("file append" if r["server"] == "logcast" else "POST to nchan")
        lines.append([writer, label(r), r["param"]] + lat(d) + ["[%s]" % r["n"]])
    table("a. one viewer of one log: ms from write to receipt",
          ["writer", "server", "lines", "p50", "p99", "max", "samples", "cmd"], lines)

def cpu_rows(step, floor_keys):
    lines = []
    for r in [r for r in rows if r["step"] == step and r["server"] != "floor"]:
        d = r["d"]
        us = g(d, "cpu_per_event_us")
        cells = [label(r), r["param"], f(g(d, "marks_per_sec")), recv(d), f(g(d, "latency_ms", "p50")), f(g(d, "latency_ms", "p99")),
                 f(g(d, "cpu_hold_pct"), "%.2f"), f(us, "%.2f")]
        for k in floor_keys(r):
            fl = floors.get(k)
            cells.append("%.2fx" % (us / fl) if us and fl else "-")
        cells.append("[%s]" % r["n"])
        lines.append(cells)
    return lines

sel = [r for r in rows if r["step"] == "b"]
if sel:
    fs, fb = floors.get(("b", "spread")), floors.get(("b", "burst"))
    table("b. N logs x 1 stream, one line per log at random points: lines delivered, ms write to receipt, daemon CPU"
          "\n   floor: write-floor over N sockets, writes spread one at a time (wake-ups included) %s us, in bursts %s us"
          % (f(fs, "%.2f"), f(fb, "%.2f")),
          ["server", "logs", "sent/s", "delivered", "p50", "p99", "CPU %", "us/line", "/spread floor", "/burst floor", "cmd"],
          cpu_rows("b", lambda r: [("b", "spread"), ("b", "burst")]))

sel = [r for r in rows if r["step"] == "c"]
if sel:
    fb = floors.get(("c", "burst"))
    lines = cpu_rows("c", lambda r: [("c", "burst")])
    lines.sort(key=lambda l: (float(l[1]), l[0]))
    table("c. one log, N streams, by lines/s: marks delivered, ms write to receipt, daemon CPU per delivered line"
          "\n   floor: write-floor, one write to each of N sockets in a burst, reader on CPU 1: %s us" % f(fb, "%.2f"),
          ["server", "lines/s", "sent/s", "delivered", "p50", "p99", "CPU %", "us/line", "/floor", "cmd"], lines)

sel = [r for r in rows if r["step"] == "d"]
if sel:
    lines = []
    for r in sel:
        d = r["d"]
        lines.append([label(r), r["param"], "%s/%s" % (g(d, "connected"), r["param"]) if d else "failed",
                      f(g(d, "cpu_idle_pct"), "%.2f"), f(g(d, "rss_per_stream_bytes"), "%.0f"),
                      recv(d), str(g(d, "streams_missing_marks")) if d else "-",
                      f(g(d, "latency_ms", "p99")), f(g(d, "cpu_per_event_us"), "%.2f"), "[%s]" % r["n"]])
    lines.sort(key=lambda l: (int(l[1]), l[0]))
    table("d. N logs x 1 stream: idle CPU (% of a core), RSS per stream, then one line to every log",
          ["server", "logs", "connected", "idle CPU %", "RSS B/stream", "delivered", "streams missing", "p99 ms", "us/line", "cmd"], lines)

print()
print("commands:")
print(open(cmds_txt).read(), end="")
PY
cat "$RES/results.txt"
