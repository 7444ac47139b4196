#!/usr/bin/env bash
# A disk-filling load (issue 11): `oha -z SECS -m POST /api/logs?duration=1`
# (or, where oha is not installed and --wrk is given, the same POSTs from
# `wrk -s scripts/wrk-post.lua`) against logcast with its default retention (--retain-files 10000). Every
# POST leaves a log behind; retention must keep the directory at its cap.
# Samples the directory (files, bytes) every 5 s while oha runs and prints
# the largest and the last sample, oha's status counts and the daemon's
# retirements (logcast_logs_retired_total).
#
#   scripts/bench-disk-fill.sh [--seconds 60] [--connections 50]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
say() { echo "[bench-disk-fill] $*" >&2; }
die() { say "error: $*"; exit 1; }
STARTED=()
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"
trap 'stop_all' EXIT

SECS=60 CONNS=50 USE_WRK=0
while [ $# -gt 0 ]; do
  case "$1" in
    --wrk) USE_WRK=1; shift ;;
    --seconds) SECS="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) die "unknown option $1" ;;
  esac
done

OHA=""
if [ "$USE_WRK" = 0 ]; then
  OHA="$(find_oha)"
  [ -n "$OHA" ] || die "oha is needed (or give --wrk)"
fi
(cd "$ROOT" && timeout 1800 cargo build --release --bin logcast >&2)
WORK="$(mktemp -d /tmp/logcast-fill.XXXXXX)"
say "machine: $(nproc) cores; commit $(git -C "$ROOT" rev-parse --short HEAD); work dir $WORK"
start_logcast "$WORK" "" "$ROOT/target/release/logcast"
say "daemon: $LC_CMD (default retention)"

sample() {
  local files bytes
  files="$(find "$WORK/logs" -maxdepth 1 -name '*.log' | wc -l)"
  bytes="$(du -sb "$WORK/logs" 2>/dev/null | cut -f1)"
  echo "$(date +%s) $files $bytes"
}
: >"$WORK/samples"
( while kill -0 "$LC_PID" 2>/dev/null; do sample >>"$WORK/samples"; sleep 5; done ) &
SAMPLER=$!
if [ -n "$OHA" ]; then
  "$OHA" -z "${SECS}s" -c "$CONNS" -m POST --no-tui --output-format json \
    "$LC_URL/api/logs?duration=1" >"$WORK/load.out" 2>"$WORK/load.err" || die "oha failed: $(cat "$WORK/load.err")"
else
  wrk -t1 -c"$CONNS" -d"${SECS}s" -s "$ROOT/scripts/wrk-post.lua" \
    "$LC_URL/api/logs?duration=1" >"$WORK/load.out" 2>"$WORK/load.err" || die "wrk failed: $(cat "$WORK/load.err")"
fi
sleep 3 # the last logs finish (duration=1) and retention catches up
sample >>"$WORK/samples"
kill "$SAMPLER" 2>/dev/null || true
retired="$(curl -s "$LC_URL/metrics" | sed -n 's/^logcast_logs_retired_total //p')"
python3 - "$WORK/load.out" "$WORK/samples" "$retired" "$SECS" "$CONNS" "${OHA:+oha}" <<'PY'
import json, re, sys
out, samples, retired, secs, conns, tool = sys.argv[1:7]
rows = [tuple(int(x) for x in l.split()) for l in open(samples) if l.strip()]
most = max(rows, key=lambda r: r[1])
last = rows[-1]
text = open(out).read()
if tool == "oha":
    j = json.loads(text)
    load = f"{j['summary']['requestsPerSec']:.0f} req/s, statuses {j.get('statusCodeDistribution')}"
else:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    total = re.search(r"(\d+) requests in", text)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    load = (f"{float(rps.group(1)):.0f} req/s, {total.group(1)} requests, "
            f"{non2xx.group(1) if non2xx else 0} not 2xx")
print(f"{tool or 'wrk'} {secs} s, {conns} connections, POST /api/logs?duration=1: {load}")
print(f"log dir: at most {most[1]} files ({most[2] / 1e6:.1f} MB), at the end {last[1]} files "
      f"({last[2] / 1e6:.1f} MB); retired by retention: {retired}")
PY
