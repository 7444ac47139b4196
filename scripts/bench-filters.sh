#!/usr/bin/env bash
# Filter groups (issue 12): STREAMS streams of one log in NGROUPS filter
# groups (`?grep=MARK|g<i>`: every group's filter matches every mark, so
# every stream gets every line) beside STREAMS unfiltered streams of the same
# log, in one run, the same lines per second. The figure is the daemon's CPU
# per delivered event (logcast-load's cpu_per_event_us): the cost of one
# match and one framing per line per group, against none.
#
#   scripts/bench-filters.sh [--streams 10000] [--groups 10] [--rate 10]
#                            [--hold 20] [--runs 1]
#
# Prints one line per run and case, then the ratio filtered/unfiltered.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "[bench-filters] $*" >&2; }
die() { say "error: $*"; exit 1; }
STARTED=()
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
trap 'stop_all' EXIT

STREAMS=10000 NGROUPS=10 RATE=10 HOLD=20 RUNS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --streams) STREAMS="$2"; shift 2 ;;
    --groups) NGROUPS="$2"; shift 2 ;;
    --rate) RATE="$2"; shift 2 ;;
    --hold) HOLD="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done

REL="$ROOT/target/release"
say "building release binaries"
(cd "$ROOT" && timeout 1800 cargo build --release --bins >&2)
LOAD="${LOGCAST_LOAD:-$REL/logcast-load}"
[ -x "$LOAD" ] || die "no logcast-load at $LOAD"
need_tool python3

WORK="$(mktemp -d /tmp/logcast-filters.XXXXXX)"
say "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%d GiB", $2/1048576}' /proc/meminfo); commit $(git -C "$ROOT" rev-parse --short HEAD)"

# case NAME URL LOGS RATE: one logcast-load run against the daemon; prints
# its JSON line.
# With N "logs", the load generator wants a mark file per log: N names
# (marks/0 .. marks/N-1) that all lead to the one log.
run_case() {
  local name="$1" url="$2" logs="$3" rate="$4"
  : >"$WORK/logs/f.log"
  mkdir -p "$WORK/marks"
  for i in $(seq 0 $((logs - 1))); do ln -sf "$WORK/logs/f.log" "$WORK/marks/$i"; done
  "$LOAD" --url "$url" --logs "$logs" --streams "$STREAMS" --hold "$HOLD" \
    --mark-file "$WORK/marks/{i}" --mark-rate "$rate" --no-jitter \
    --pid "$LC_PID" --json 2>"$WORK/$name.err" | tail -1
}

start_logcast "$WORK" "" "$REL/logcast"
say "daemon: $LC_CMD"
per_group_rate=$(python3 -c "print($RATE / $NGROUPS)")
for run in $(seq 1 "$RUNS"); do
  for name in unfiltered filtered; do
    if [ "$name" = filtered ]; then
      json=$(run_case "$name" "$LC_URL/api/logs/f/stream?grep=MARK%7Cg{i}" "$NGROUPS" "$per_group_rate")
    else
      json=$(run_case "$name" "$LC_URL/api/logs/f/stream" 1 "$RATE")
    fi
    echo "$json" >"$WORK/$name.$run.json"
    python3 - "$name" "$run" "$WORK/$name.$run.json" <<'PY'
import json, sys
name, run, path = sys.argv[1:4]
j = json.loads(open(path).read())
# Every event is a mark line here; with several "logs" the load generator
# counts the other logs' marks as duplicates, so CPU per event is taken
# over all events received.
us = j["cpu_marks_secs"] * 1e6 / max(j["events"], 1)
lat = j.get("latency_ms") or {}
print(f"run {run} {name:<10} connected {j.get('connected')} events {j.get('events')} "
      f"cpu_per_event_us {us:.3f} p50_ms {lat.get('p50')} p99_ms {lat.get('p99')}")
PY
  done
done
python3 - "$WORK" "$RUNS" <<'PY'
import json, statistics, sys
work, runs = sys.argv[1], int(sys.argv[2])
def us(name, r):
    j = json.loads(open(f"{work}/{name}.{r}.json").read())
    return j["cpu_marks_secs"] * 1e6 / max(j["events"], 1)
def med(name):
    return statistics.median(us(name, r) for r in range(1, runs + 1))
u, f = med("unfiltered"), med("filtered")
print(f"median cpu_per_event_us: unfiltered {u:.3f}, filtered {f:.3f}; ratio {f / u:.2f}x (target <= 1.3x)")
PY
