#!/usr/bin/env bash
# HTTP load test of logcast's non-streaming endpoints with wrk and oha.
#
# Starts target/release/logcast on a free port with a temporary log dir (unless
# --url is given), creates one log with POST /api/logs?duration=1 and waits
# until it is finished (so its JSON no longer changes), then for GET /,
# GET /healthz and GET /api/logs/<id> runs:
#   wrk  without pipelining   (scripts/wrk-pipeline.lua, depth 1)
#   wrk  pipelined            (scripts/wrk-pipeline.lua, depth 16)
#   oha  without pipelining   (oha has no pipelining)
# each for --duration seconds, and prints one table:
#   endpoint, tool, pipelined, req/s, p50, p99, socket errors, non-2xx.
# "non-2xx" counts responses of status 400 and above (wrk's definition) and,
# for oha, every status that is not 2xx.
#
# usage: scripts/loadtest.sh [options]
#   --url BASEURL        test a running server (http://127.0.0.1:5000), start nothing
#   --log-id ID          with --url: the log for /api/logs/<id> (default: POST one)
#   --bin PATH           the daemon to start (default: target/release/logcast, built if missing)
#   --duration SECS      per run (default 10)
#   --connections N      concurrent connections (default 50)
#   --threads N          wrk threads (default 1)
#   --depth N            pipelining depth (default 16)
#   --tools "wrk oha"    which tools to run (default both)
#   --endpoints "LIST"   paths to test; {id} is the log id (default "/ /healthz /api/logs/{id}")
#   --daemon-cpu N       taskset the started daemon to this CPU (default 0 on 2+ cores)
#   --load-cpu N         taskset wrk/oha to this CPU (default 1 on 2+ cores, none with --url)
#   --label NAME         server name in the --tsv rows (default logcast)
#   --tsv FILE           also append tab-separated rows to FILE:
#                        label endpoint tool pipelined rps p50_ms p99_ms socket_errors non2xx
#   -h, --help
# Everything it starts is stopped on exit; every run is bounded by `timeout`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LUA="$ROOT/scripts/wrk-pipeline.lua"

URL=""
LOG_ID=""
BIN="${LOGCAST_BIN:-}"
DURATION=10
CONNS=50
THREADS=1
DEPTH=16
TOOLS="wrk oha"
ENDPOINTS="/ /healthz /api/logs/{id}"
DAEMON_CPU=auto
LOAD_CPU=auto
LABEL=logcast
TSV=""

die() { echo "loadtest: $*" >&2; exit 1; }
say() { echo "loadtest: $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --url) URL="${2%/}"; shift 2 ;;
    --log-id) LOG_ID="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --threads) THREADS="$2"; shift 2 ;;
    --depth) DEPTH="$2"; shift 2 ;;
    --tools) TOOLS="$2"; shift 2 ;;
    --endpoints) ENDPOINTS="$2"; shift 2 ;;
    --daemon-cpu) DAEMON_CPU="$2"; shift 2 ;;
    --load-cpu) LOAD_CPU="$2"; shift 2 ;;
    --label) LABEL="$2"; shift 2 ;;
    --tsv) TSV="$2"; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "loadtest: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$DURATION" =~ ^[0-9]+$ && "$DURATION" -ge 1 ]] || die "--duration: a whole number of seconds >= 1"

CORES=$(nproc)
if [ "$DAEMON_CPU" = auto ]; then
  if [ "$CORES" -ge 2 ]; then DAEMON_CPU=0; else DAEMON_CPU=""; fi
fi
if [ "$LOAD_CPU" = auto ]; then
  if [ "$CORES" -ge 2 ] && [ -z "$URL" ]; then LOAD_CPU=1; else LOAD_CPU=""; fi
fi

work_dir loadtest

# ---- tools -------------------------------------------------------------------
need_tool curl
need_tool python3 python3 "python3 is needed (to read oha's JSON)"

WRK=""
OHA=""
for t in $TOOLS; do
  case "$t" in
    wrk)
      if ! command -v wrk >/dev/null; then say "installing wrk (apt)"; apt_install wrk || say "cannot install wrk: skipped"; fi
      WRK="$(command -v wrk || true)"
      ;;
    oha)
      OHA="$(find_oha)"
      ;;
    *) die "--tools: unknown tool '$t' (wrk, oha)" ;;
  esac
done
[ -n "$WRK$OHA" ] || die "no load tool available"

# ---- the server --------------------------------------------------------------
if [ -z "$URL" ]; then
  if [ -z "$BIN" ]; then
    BIN="$ROOT/target/release/logcast"
    if [ ! -x "$BIN" ]; then
      say "cargo build --release"
      (cd "$ROOT" && cargo build --release --bin logcast >&2)
    fi
  fi
  [ -x "$BIN" ] || die "no daemon at $BIN"
  mkdir -p "$WORK/logs"
  : >"$WORK/daemon.out"
  # shellcheck disable=SC2046
  RUST_LOG=warn $(pin "$DAEMON_CPU") "$BIN" --port 0 --log-dir "$WORK/logs" >"$WORK/daemon.out" 2>"$WORK/daemon.err" &
  STARTED+=($!)
  for _ in $(seq 1 100); do
    URL="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$WORK/daemon.out" 2>/dev/null | head -1 || true)"
    [ -n "$URL" ] && break
    kill -0 "${STARTED[-1]}" 2>/dev/null || { cat "$WORK/daemon.err" >&2; die "the daemon exited"; }
    sleep 0.1
  done
  [ -n "$URL" ] || die "the daemon printed no URL"
  say "started $BIN at $URL (pid ${STARTED[-1]}${DAEMON_CPU:+, CPU $DAEMON_CPU})"
fi

json_field() { # json_field KEY < json  (top-level string/number/bool)
  python3 -c 'import json,sys; v=json.load(sys.stdin).get(sys.argv[1]); print("" if v is None else (str(v).lower() if isinstance(v,bool) else v))' "$1"
}

if [[ "$ENDPOINTS" == *"{id}"* ]] && [ -z "$LOG_ID" ]; then
  body="$(curl -sS --max-time 5 -X POST "$URL/api/logs?duration=1")" || die "POST /api/logs failed"
  LOG_ID="$(printf '%s' "$body" | json_field log_id)" || die "POST /api/logs: no log_id in: $body"
  # wait until its writer has finished, so the response no longer changes
  for _ in $(seq 1 50); do
    w="$(curl -sS --max-time 5 "$URL/api/logs/$LOG_ID" | json_field writing || true)"
    [ "$w" = false ] && break
    sleep 0.2
  done
  say "log $LOG_ID (writing: ${w:-?})"
fi

# ---- runs --------------------------------------------------------------------
ROWS=()
row() { # endpoint tool pipelined rps p50_ms p99_ms sockerr non2xx
  ROWS+=("$(printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s' "$@")")
  if [ -n "$TSV" ]; then printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$LABEL" "$@" >>"$TSV"; fi
}

run_wrk() { # path depth shown
  local out line
  # shellcheck disable=SC2046
  out="$(timeout $((DURATION + 30)) $(pin "$LOAD_CPU") "$WRK" -t"$THREADS" -c"$CONNS" -d"${DURATION}s" --timeout 5s \
        -s "$LUA" "$URL$1" -- "$2" 2>&1)" || true
  line="$(printf '%s\n' "$out" | grep '^WRK_RESULT' | tail -1)"
  if [ -z "$line" ]; then
    say "wrk $1 depth $2 failed: $(printf '%s' "$out" | tail -3)"
    row "$3" wrk "$([ "$2" -gt 1 ] && echo "$2" || echo no)" - - - - -
    return
  fi
  local rps p50 p99 c r w t s
  # shellcheck disable=SC2086
  eval "$(printf '%s' "$line" | tr ' ' '\n' | grep '=' | sed 's/^\([a-z0-9_]*\)=/W_\1=/')"
  rps="$(printf '%.0f' "$W_rps")"
  p50="$(awk -v u="$W_p50_us" 'BEGIN{printf "%.2f", u/1000}')"
  p99="$(awk -v u="$W_p99_us" 'BEGIN{printf "%.2f", u/1000}')"
  c=$((W_connect + W_read + W_write + W_timeout))
  row "$3" wrk "$([ "$2" -gt 1 ] && echo "$2" || echo no)" "$rps" "$p50" "$p99" "$c" "$W_status"
}

run_oha() { # path shown
  local out
  # shellcheck disable=SC2046
  out="$(timeout $((DURATION + 30)) $(pin "$LOAD_CPU") "$OHA" -z "${DURATION}s" -c "$CONNS" --no-tui \
        --output-format json "$URL$1" 2>"$WORK/oha.err")" || true
  local parsed
  parsed="$(printf '%s' "$out" | python3 -c '
import json, sys
try:
    d = json.load(sys.stdin)
except Exception:
    sys.exit(1)
s = d.get("summary", {})
lp = d.get("latencyPercentiles", {})
codes = d.get("statusCodeDistribution", {}) or {}
errs = d.get("errorDistribution", {}) or {}
non2xx = sum(n for c, n in codes.items() if not str(c).startswith("2"))
# requests cut off by the end of the run are not socket errors
sockerr = sum(n for e, n in errs.items() if "deadline" not in e.lower())
ms = lambda v: "%.2f" % (v * 1000) if isinstance(v, (int, float)) else "-"
print("%.0f\t%s\t%s\t%d\t%d" % (s.get("requestsPerSec", 0), ms(lp.get("p50")), ms(lp.get("p99")), sockerr, non2xx))
')" || { say "oha $1 failed: $(tail -3 "$WORK/oha.err")"; row "$2" oha no - - - - -; return; }
  local rps p50 p99 se nx
  IFS=$'\t' read -r rps p50 p99 se nx <<<"$parsed"
  row "$2" oha no "$rps" "$p50" "$p99" "$se" "$nx"
}

for ep in $ENDPOINTS; do
  path="${ep//\{id\}/$LOG_ID}"
  shown="${ep//\{id\}/<id>}"
  code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "$URL$path" || true)"
  [ "$code" = 200 ] || say "warning: GET $path answers $code"
  if [ -n "$WRK" ]; then
    say "wrk $path (${DURATION}s)"; run_wrk "$path" 1 "$shown"
    say "wrk $path pipelined x$DEPTH (${DURATION}s)"; run_wrk "$path" "$DEPTH" "$shown"
  fi
  if [ -n "$OHA" ]; then
    say "oha $path (${DURATION}s)"; run_oha "$path" "$shown"
  fi
done

# ---- table -------------------------------------------------------------------
echo
echo "$LABEL at $URL (<id> = $LOG_ID): $CONNS connections, ${DURATION}s per run${LOAD_CPU:+, load on CPU $LOAD_CPU}"
printf '%-22s %-4s %-9s %10s %9s %9s %9s %8s\n' endpoint tool pipelined "req/s" "p50 ms" "p99 ms" "sock err" "non-2xx"
for r in "${ROWS[@]}"; do
  IFS=$'\t' read -r e t p rps p50 p99 se nx <<<"$r"
  printf '%-22s %-4s %-9s %10s %9s %9s %9s %8s\n' "GET $e" "$t" "$p" "$rps" "$p50" "$p99" "$se" "$nx"
done
