#!/usr/bin/env bash
# GET / under wrk: logcast beside nginx with one worker serving the same bytes,
# in one run (BENCHMARKS.md, "GET / with one copy (issue 12)").
#
# logcast and nginx (scripts/nginx-static.conf.tmpl, the page saved from logcast,
# md5 checked) run on CPU 0, wrk on CPU 1, against 127.0.0.1 only. Rounds
# alternate between the servers; each round is one bounded wrk run per server for
# a full `GET /` and for a revalidation (`If-None-Match` with the server's own
# ETag: 304, no body). Prints every run and the medians.
#
# usage: scripts/bench-page.sh [--rounds N] [--duration SECS] [--connections N] [--bin PATH]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=3
DURATION=10
CONNS=50
BIN="$ROOT/target/release/logcast"

say() { echo "bench-page: $*" >&2; }
die() { say "$*"; exit 1; }
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --connections) CONNS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "bench-page: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
[ "$(nproc)" -ge 2 ] || die "needs 2 cores (servers on CPU 0, wrk on CPU 1)"
[ -x "$BIN" ] || die "no $BIN: cargo build --release"

work_dir bench-page
need_tool wrk
need_tool taskset util-linux
NGINX_BIN="$(nginx_bin)"
[ -n "$NGINX_BIN" ] || die "nginx is needed"

start_logcast "$WORK/lc" 0 "$BIN"
say "logcast: $LC_CMD"

mkdir -p "$WORK/www" "$WORK/tmp" "$WORK/nginx"
curl -sS --max-time 5 -o "$WORK/www/index.html" "$LC_URL/"
chmod -R a+rX "$WORK"
NG_PORT="$(free_port)"
user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root root;"
sed -e "s|@DIR@|$WORK|g" -e "s|@PORT@|$NG_PORT|g" -e "s|@LOGID@|none|g" -e "s|@USER@|$user_line|g" \
  "$ROOT/scripts/nginx-static.conf.tmpl" >"$WORK/nginx/nginx.conf"
taskset -c 0 "$NGINX_BIN" -p "$WORK/nginx/" -c "$WORK/nginx/nginx.conf" 2>"$WORK/nginx/stderr" &
STARTED+=("$!")
NG_URL="http://127.0.0.1:$NG_PORT"
say "nginx: taskset -c 0 $NGINX_BIN -c $WORK/nginx/nginx.conf (1 worker)"
for _ in $(seq 1 50); do curl -s -o /dev/null "$NG_URL/healthz" && break; sleep 0.1; done
cmp -s <(curl -s "$LC_URL/") <(curl -s "$NG_URL/") || die "nginx's page differs from logcast's"

etag() { curl -sS -D - -o /dev/null "$1/" | sed -n 's/^[Ee][Tt][Aa][Gg]: *\(.*\)\r$/\1/p'; }
LC_TAG="$(etag "$LC_URL")"
NG_TAG="$(etag "$NG_URL")"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $LC_TAG" "$LC_URL/")" = 304 ] || die "logcast: no 304"
[ "$(curl -s -o /dev/null -w '%{http_code}' -H "If-None-Match: $NG_TAG" "$NG_URL/")" = 304 ] || die "nginx: no 304"

# run_wrk URL [HEADER]: prints requests/s (wrk -t1 on CPU 1); errors fail the run
run_wrk() {
  local out
  out="$(timeout $((DURATION + 30)) taskset -c 1 wrk -t1 -c"$CONNS" -d"${DURATION}s" ${2:+-H "$2"} "$1/")"
  if printf '%s' "$out" | grep -q -e 'Socket errors' -e 'Non-2xx'; then
    # a 304 is "Non-2xx" to wrk; only socket errors count against a revalidation
    if [ -z "${2:-}" ] || printf '%s' "$out" | grep -q 'Socket errors'; then
      printf '%s\n' "$out" >&2
      die "wrk reported errors against $1"
    fi
  fi
  printf '%s' "$out" | awk '/^Requests\/sec/ {printf "%d", $2}'
}

declare -A RUNS
for r in $(seq 1 "$ROUNDS"); do
  for kind in page revalidate; do
    for s in logcast nginx; do
      if [ "$s" = logcast ]; then url="$LC_URL"; tag="$LC_TAG"; else url="$NG_URL"; tag="$NG_TAG"; fi
      header=""
      [ "$kind" = revalidate ] && header="If-None-Match: $tag"
      rps="$(run_wrk "$url" "$header")"
      say "round $r, $kind, $s: $rps requests/s"
      RUNS[$s.$kind]="${RUNS[$s.$kind]:-} $rps"
    done
  done
done

median() { printf '%s\n' $1 | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
echo "wrk -t1 -c$CONNS -d${DURATION}s, $ROUNDS alternating rounds; servers on CPU 0, wrk on CPU 1"
printf '%-12s %-34s %-34s %s\n' "GET /" "logcast (runs → median)" "nginx 1 worker (runs → median)" "ratio"
for kind in page revalidate; do
  l="${RUNS[logcast.$kind]}"; n="${RUNS[nginx.$kind]}"
  lm="$(median "$l")"; nm="$(median "$n")"
  printf '%-12s %-34s %-34s %s\n' "$kind" "${l# } → $lm" "${n# } → $nm" \
    "$(awk -v a="$lm" -v b="$nm" 'BEGIN {printf "%.2f×", a / b}')"
done
