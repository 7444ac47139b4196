#!/usr/bin/env bash
# The worst delay one heavy request causes everyone else (SPEC section 5:
# "other streams and requests delayed < 20 ms"). A prober polls GET /healthz
# back to back on its own connection (scripts/healthz_probe.py) while:
#
#   tail   ?tail=1 on a finished multi-GB log, until its `end` event (whose
#          line count must not freeze the reactor);
#   list   the daemon starts on a directory of a million files (the index is
#          built in steps), then pages through GET /api/logs?limit=10000;
#   storm  10,000 clients reconnect at once to a big log with Last-Event-ID
#          (scripts/reconnect_storm.py), each needing a catch-up read;
#   wide   --wide streams of one log that gets 4 lines a second, and as many
#          GET /api/events subscribers while a log is created or deleted
#          every 100 ms: fan-outs and directory changes each wider than a
#          turn's writes, in the same turns (not in the default cases).
#
#   scripts/bench-stalls.sh [--gb 4] [--files 1000000] [--clients 10000]
#                           [--wide 5000] [--seconds 20] [--bin PATH]
#                           [--cases "tail list storm"] [--keep]
#
# --bin runs another logcast binary (an older commit's, for a comparison).
# Prints one line per case: the probe's max, p99 and p50, and what the case
# did. The test files live in a temp dir on the same disk as target/ and are
# removed at the end (--keep keeps them for a rerun: they are reused).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "[bench-stalls] $*" >&2; }
die() { say "error: $*"; exit 1; }
STARTED=()
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

GB=4 FILES=1000000 CLIENTS=10000 WIDE=5000 SECONDS_WIDE=20 CASES="tail list storm" KEEP=0 BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --wide) WIDE="$2"; shift 2 ;;
    --seconds) SECONDS_WIDE="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --gb) GB="$2"; shift 2 ;;
    --files) FILES="$2"; shift 2 ;;
    --clients) CLIENTS="$2"; shift 2 ;;
    --cases) CASES="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,27p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done

WORK="$ROOT/target/bench-stalls"
mkdir -p "$WORK"
# The wide case's streams' load runs inside a subshell (probe_while): its
# pid is kept in a file for the cleanup.
cleanup() {
  [ -f "$WORK/wide/streams.pid" ] && kill -TERM "$(cat "$WORK/wide/streams.pid")" 2>/dev/null
  stop_all
  [ "$KEEP" = 1 ] || rm -rf "$WORK"
}
trap cleanup EXIT

say "building release binaries"
(cd "$ROOT" && cargo build --release --workspace --bins --quiet)
BIN="${BIN:-$ROOT/target/release/logcast}"
LOAD="$ROOT/target/release/logcast-load"
PROBE="python3 $ROOT/scripts/healthz_probe.py"

# probe_while PORT CMD...: runs the prober while CMD runs; prints its line.
probe_while() {
  local port="$1"; shift
  $PROBE --port "$port" --seconds 3600 --json >"$WORK/probe.json" &
  local probe=$!
  sleep 0.3
  "$@"
  kill -TERM "$probe"; wait "$probe" || true
  cat "$WORK/probe.json"
}

port_of() { echo "${1##*:}"; }

# The daemon's own view: its longest reactor turn and the most file bytes
# one turn read (gauges since it started).
daemon_turns() {
  curl -s "$LC_URL/metrics" | awk '/^logcast_turn_max_microseconds /{us=$2} /^logcast_turn_read_bytes_max /{b=$2} /^logcast_turn_writes_max /{w=$2} END {printf "daemon: longest turn %.1f ms, most read in one turn %.2f MiB, most writes in one turn %d\n", us/1000, b/1048576, w}'
}

case_tail() {
  local dir="$WORK/tail" size=$((GB << 30))
  mkdir -p "$dir/logs"
  if [ ! -f "$dir/logs/big.log" ] || [ "$(stat -c %s "$dir/logs/big.log")" -lt "$size" ]; then
    say "tail: writing a ${GB} GB log"
    rm -f "$dir/logs/big.log"
    { yes "2026-12-01T10:00:00Z INFO request served in 12 ms path=/api/items/42 status=200" || true; } \
      | head -c "$size" >"$dir/logs/big.log"
    chmod 0444 "$dir/logs/big.log"
  fi
  start_logcast "$dir" "" "$BIN"
  local port; port="$(port_of "$LC_URL")"
  local t0 t1 result
  t0=$(date +%s.%N)
  result="$(probe_while "$port" curl -sN --max-time 600 "$LC_URL/api/logs/big/stream?tail=1" -o "$dir/out")"
  t1=$(date +%s.%N)
  local end; end="$(grep -a '^data: {"reason"' "$dir/out" | tail -1)"
  echo "tail: ?tail=1 on a ${GB} GB finished log: $result; end after $(echo "$t1 - $t0" | bc) s: $end"
  echo "tail: $(daemon_turns)"
  stop_pid "$LC_PID"
}

case_list() {
  local dir="$WORK/list"
  mkdir -p "$dir/logs"
  local have; have="$(find "$dir/logs" -maxdepth 1 -name '*.log' | wc -l)"
  if [ "$have" -lt "$FILES" ]; then
    say "list: creating $FILES files (once; --keep keeps them)"
    (cd "$dir/logs" && seq 1 "$FILES" | sed 's/$/.log/' | xargs touch)
  fi
  start_logcast "$dir" "" "$BIN"
  local port; port="$(port_of "$LC_URL")"
  wait_built() {
    # The index builds in steps: wait for it to count every file.
    local total="" t0; t0=$(date +%s.%N)
    while [ "${total:-0}" -lt "$FILES" ]; do
      total="$(curl -sI "$LC_URL/api/logs?limit=1" | tr -d '\r' | sed -n 's/^X-Total-Count: //Ip')"
      sleep 0.2
    done
    echo "$(date +%s.%N) - $t0" | bc >"$dir/build.out"
  }
  list_pages() {
    local url="/api/logs?limit=10000" n=0
    while [ -n "$url" ] && [ "$n" -lt 20 ]; do
      url="$(curl -s -D - -o /dev/null "$LC_URL$url" | tr -d '\r' | sed -n 's/^Link: <\([^>]*\)>.*/\1/Ip')"
      n=$((n + 1))
    done
    echo "$n" >"$dir/pages.out"
  }
  local built paged
  built="$(probe_while "$port" wait_built)"
  paged="$(probe_while "$port" list_pages)"
  echo "list: index of $FILES files built in $(cat "$dir/build.out") s after the daemon answered: $built"
  echo "list: then $(cat "$dir/pages.out") pages of 10,000 (GET /api/logs?limit=10000, following Link): $paged"
  echo "list: $(daemon_turns)"
  stop_pid "$LC_PID"
}

case_storm() {
  local dir="$WORK/storm"
  mkdir -p "$dir/logs"
  if [ ! -f "$dir/logs/big.log" ]; then
    { yes "2026-12-01T10:00:00Z INFO request served in 12 ms path=/api/items/42 status=200" || true; } \
      | head -c $((256 << 20)) >"$dir/logs/big.log"
  fi
  start_logcast "$dir" "" "$BIN"
  local port; port="$(port_of "$LC_URL")"
  storm() {
    python3 "$ROOT/scripts/reconnect_storm.py" --port "$port" \
      --log big --clients "$CLIENTS" --from 1000 --seconds 10 >"$dir/storm.out" 2>&1 || true
  }
  local result
  result="$(probe_while "$port" storm)"
  echo "storm: $CLIENTS clients reconnecting with Last-Event-ID: $result; $(cat "$dir/storm.out")"
  echo "storm: $(daemon_turns)"
  stop_pid "$LC_PID"
}

streams_open() { curl -s "$LC_URL/metrics" | awk '/^logcast_streams_open /{v=$2} END {print v+0}'; }

case_wide() {
  local dir="$WORK/wide"
  rm -rf "$dir"
  mkdir -p "$dir/logs"
  : >"$dir/logs/wide.log"
  start_logcast "$dir" "" "$BIN"
  local port; port="$(port_of "$LC_URL")"
  "$LOAD" --url "$LC_URL/api/events" --streams "$WIDE" --hold $((SECONDS_WIDE + 60)) \
    --source-addrs 127.0.0.2 >"$dir/events.out" 2>&1 &
  local subs=$!
  STARTED+=("$subs")
  # Every subscriber connected before the probe starts.
  local open=0 tries=0
  while [ "${open%.*}" -lt "$WIDE" ] && [ "$tries" -lt 300 ]; do
    sleep 0.1
    tries=$((tries + 1))
    open="$(streams_open)"
  done
  [ "${open%.*}" -ge "$WIDE" ] || die "wide: only $open of $WIDE subscribers connected"
  wide() {
    "$LOAD" --url "$LC_URL/api/logs/wide/stream" --streams "$WIDE" --hold "$SECONDS_WIDE" \
      --source-addrs 127.0.0.3 --mark-file "$dir/logs/wide.log" --mark-rate 4 \
      --expect-marks --pid "$LC_PID" >"$dir/streams.out" 2>&1 &
    local streams=$! i=0
    echo "$streams" >"$dir/streams.pid"
    while kill -0 "$streams" 2>/dev/null; do
      : >"$dir/logs/churn-$i.log"
      sleep 0.1
      rm -f "$dir/logs/churn-$i.log"
      sleep 0.1
      i=$((i + 1))
    done
    wait "$streams" || say "wide: the streams' load exited $?"
    rm -f "$dir/streams.pid"
    echo "$i" >"$dir/churn.out"
  }
  local result
  result="$(probe_while "$port" wide)"
  # The streams' load has gone: wait for the daemon to close its streams.
  local subscribed tries=0
  subscribed="$(streams_open)"
  while [ "${subscribed%.*}" -gt "$WIDE" ] && [ "$tries" -lt 50 ]; do
    sleep 0.1
    tries=$((tries + 1))
    subscribed="$(streams_open)"
  done
  echo "wide: $WIDE streams of one log (4 lines/s) beside $WIDE /api/events subscribers, $(cat "$dir/churn.out") logs created and deleted: $result"
  echo "wide: streams' load: $(grep -E 'latency|marks|p99' "$dir/streams.out" | tr -s ' ' | head -4 | paste -sd ';')"
  echo "wide: $subscribed streams still open (the subscribers); $(daemon_turns)"
  stop_pid "$subs"
  stop_pid "$LC_PID"
}

say "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB; commit $(cd "$ROOT" && git rev-parse --short HEAD)"
for c in $CASES; do "case_$c"; done
