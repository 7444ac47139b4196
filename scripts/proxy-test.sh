#!/usr/bin/env bash
# logcast behind nginx, end to end: the example server block
# (scripts/nginx-logcast.conf) in front of a real daemon, checked with curl.
#
# Installs nginx when missing (apt), builds logcast (cargo build --release),
# starts logcast on a free loopback port with a temporary log dir, writes a
# complete nginx.conf in a temporary dir (daemon off, pid, logs and temp paths
# there, `gzip on` for everything at the http level, as many sites have)
# that includes the example server block with the upstream and listen ports
# filled in, starts nginx, and checks through the proxy that:
#   - stream headers pass (text/event-stream, no-cache, X-Accel-Buffering: no,
#     no Content-Length) and the stream is not compressed while other
#     responses are;
#   - lines appended to a log arrive live, each within 1 s of being written;
#   - an idle stream gets its `: keepalive` comment;
#   - a finished log ends with `event: end` (finished) and a clean close;
#   - a reconnect with Last-Event-ID resumes exactly (no line lost or
#     repeated), and at the end of a finished log gets 204;
#   - a client that leaves releases its stream in logcast;
# and that scripts/logcast.service passes `systemd-analyze verify` (when
# available). Bounded in time; cleans up on any exit. Prints
# `N passed, N failed` last; exits non-zero on any failure.
#
#   scripts/proxy-test.sh                      build and test target/release/logcast
#   LOGCAST_BIN=/path/to/bin scripts/proxy-test.sh   test another binary, no build
#   PROXY_KEEP=1 scripts/proxy-test.sh         keep the temp dir (configs, logs)
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[proxy] %s\n' "$*" >&2; }

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "ok   - $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL - $1"; }
# check "description" command...: pass when the command succeeds.
check() {
  local desc="$1"
  shift
  if "$@"; then pass "$desc"; else fail "$desc"; fi
}
fail_setup() {
  say "$*"
  FAILED=$((FAILED + 1))
  echo "$PASSED passed, $FAILED failed"
  exit 1
}

# ---- prerequisites -----------------------------------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
NGINX="$(command -v nginx 2>/dev/null || true)"
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
  say "installing nginx (apt)"
  export DEBIAN_FRONTEND=noninteractive
  { as_root apt-get update -qq && as_root apt-get install -y -qq nginx >/dev/null; } || fail_setup "cannot install nginx"
  NGINX="$(command -v nginx 2>/dev/null || echo /usr/sbin/nginx)"
fi
[ -x "$NGINX" ] || fail_setup "no nginx binary"
for tool in curl awk; do
  command -v "$tool" >/dev/null 2>&1 || fail_setup "$tool is needed"
done

if [ -z "${LOGCAST_BIN:-}" ]; then
  say "cargo build --release"
  cargo build --release >&2 || fail_setup "cargo build --release failed"
  LOGCAST_BIN="$ROOT/target/release/logcast"
fi
[ -x "$LOGCAST_BIN" ] || fail_setup "no daemon binary at $LOGCAST_BIN"

# ---- processes and cleanup ------------------------------------------------------
TMP="$(mktemp -d "${TMPDIR:-/tmp}/logcast-proxy.XXXXXX")"
LOGCAST_PID=""
NGINX_PID=""
WATCHDOG_PID=""
BG_PIDS=()

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  for pid in "${BG_PIDS[@]}" "$NGINX_PID" "$LOGCAST_PID"; do
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null
  done
  for pid in "$NGINX_PID" "$LOGCAST_PID"; do
    [ -n "$pid" ] && { timeout 3 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -KILL "$pid" 2>/dev/null; }
  done
  [ -n "$WATCHDOG_PID" ] && kill -TERM "$WATCHDOG_PID" 2>/dev/null
  if [ -n "${PROXY_KEEP:-}" ]; then say "kept $TMP"; else rm -rf "$TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The whole run is bounded: after 300 s the script is stopped (and cleans up).
(
  sleep 300
  echo "[proxy] timed out after 300 s" >&2
  kill -TERM $$ 2>/dev/null
) &
WATCHDOG_PID=$!

# ---- logcast --------------------------------------------------------------------
LOGS="$TMP/logs"
"$LOGCAST_BIN" --bind 127.0.0.1 --port 0 --log-dir "$LOGS" \
  --write-interval-ms 100 --poll-interval-ms 100 --heartbeat-interval-ms 1000 \
  >"$TMP/logcast.out" 2>"$TMP/logcast.err" &
LOGCAST_PID=$!
UP_PORT=""
for _ in $(seq 1 100); do
  UP_PORT="$(sed -n 's#^listening on http://127\.0\.0\.1:\([0-9]*\)$#\1#p' "$TMP/logcast.out")"
  [ -n "$UP_PORT" ] && break
  kill -0 "$LOGCAST_PID" 2>/dev/null || break
  sleep 0.05
done
[ -n "$UP_PORT" ] || fail_setup "logcast did not start: $(cat "$TMP/logcast.err")"
UPSTREAM="http://127.0.0.1:$UP_PORT"
say "logcast on $UPSTREAM (pid $LOGCAST_PID)"

# ---- nginx ----------------------------------------------------------------------
port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_nginx_conf() {
  local port="$1"
  sed -e "s#server 127\.0\.0\.1:5000;#server 127.0.0.1:$UP_PORT;#" \
    -e "s#^\( *\)listen 80;#\1listen 127.0.0.1:$port;#" \
    scripts/nginx-logcast.conf >"$TMP/logcast-site.conf"
  grep -q "server 127.0.0.1:$UP_PORT;" "$TMP/logcast-site.conf" || return 1
  grep -q "listen 127.0.0.1:$port;" "$TMP/logcast-site.conf" || return 1
  mkdir -p "$TMP/nginx-temp"
  {
    echo "daemon off;"
    echo "worker_processes 1;"
    # Running as root, workers would switch to `nobody` and could not use $TMP.
    [ "$(id -u)" -eq 0 ] && echo "user root;"
    echo "pid $TMP/nginx.pid;"
    echo "error_log $TMP/nginx-error.log info;"
    echo "events { worker_connections 1024; }"
    echo "http {"
    echo "    access_log $TMP/nginx-access.log;"
    echo "    default_type application/octet-stream;"
    for t in client_body proxy fastcgi uwsgi scgi; do
      echo "    ${t}_temp_path $TMP/nginx-temp/$t;"
    done
    echo "    # Compress everything, as many sites do: the stream location must opt out."
    echo "    gzip on;"
    echo "    gzip_types *;"
    echo "    gzip_min_length 1;"
    echo "    include $TMP/logcast-site.conf;"
    echo "}"
  } >"$TMP/nginx.conf"
}

NGINX_ERR_FLAG=()
"$NGINX" -h 2>&1 | grep -q -- '-e filename' && NGINX_ERR_FLAG=(-e "$TMP/nginx-error.log")
PROXY_PORT=""
for _ in $(seq 1 20); do
  port=$((20000 + RANDOM % 20000))
  port_in_use "$port" && continue
  write_nginx_conf "$port" || fail_setup "cannot template scripts/nginx-logcast.conf"
  "$NGINX" -t -q -p "$TMP/" -c "$TMP/nginx.conf" "${NGINX_ERR_FLAG[@]}" 2>"$TMP/nginx-t.err" \
    || fail_setup "nginx -t rejects the config: $(cat "$TMP/nginx-t.err")"
  "$NGINX" -p "$TMP/" -c "$TMP/nginx.conf" "${NGINX_ERR_FLAG[@]}" 2>>"$TMP/nginx-start.err" &
  NGINX_PID=$!
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null --max-time 1 "http://127.0.0.1:$port/healthz"; then PROXY_PORT="$port"; break; fi
    kill -0 "$NGINX_PID" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$PROXY_PORT" ] && break
  kill -TERM "$NGINX_PID" 2>/dev/null
  wait "$NGINX_PID" 2>/dev/null
  NGINX_PID=""
done
[ -n "$PROXY_PORT" ] || fail_setup "nginx did not start: $(tail -5 "$TMP/nginx-error.log" "$TMP/nginx-start.err" 2>/dev/null)"
PROXY="http://127.0.0.1:$PROXY_PORT"
say "nginx on $PROXY (pid $NGINX_PID) -> $UPSTREAM"

# ---- helpers --------------------------------------------------------------------
now() { date +%s.%N; }
# The value of a response header (case-insensitive) from a `curl -D` dump.
header() { tr -d '\r' <"$1" | awk -v h="$(echo "$2" | tr 'A-Z' 'a-z')" -F': ' 'tolower($1) == h { v = $2 } END { print v }'; }
status_of() { tr -d '\r' <"$1" | awk 'NR == 1 { print $2 }'; }
metric() { curl -s --max-time 2 "$UPSTREAM/metrics" | awk -v m="$1" '$1 == m { print $2 }'; }
# Waits up to $2 seconds for `metric $1` to equal $3.
wait_metric() {
  local deadline=$(($(date +%s) + $2))
  while [ "$(date +%s)" -le "$deadline" ]; do
    [ "$(metric "$1")" = "$3" ] && return 0
    sleep 0.1
  done
  say "$1 = $(metric "$1"), expected $3"
  return 1
}
# Checks that the SSE events in file $1 (message events only) are exactly the
# lines of log file $2 from byte offset $3 to its end: ids and data.
events_match_file() {
  local events="$1" log="$2" from="$3"
  tail -c +"$((from + 1))" "$log" >"$TMP/expected.txt"
  awk -v from="$from" '
    /^id: /   { id = substr($0, 5) }
    /^event: /{ ev = substr($0, 8) }
    /^data: / { data = substr($0, 7) }
    /^$/      { if (ev == "" && id != "") { print data; ids[++n] = id; len[n] = length(data) + 1 } ev = ""; id = "" }
    END {
      pos = from
      for (i = 1; i <= n; i++) { pos += len[i]; if (ids[i] != pos) { print "id " ids[i] " expected " pos > "/dev/stderr"; exit 1 } }
    }' "$events" >"$TMP/got.txt" || return 1
  cmp -s "$TMP/expected.txt" "$TMP/got.txt" || { diff "$TMP/expected.txt" "$TMP/got.txt" | head -5 >&2; return 1; }
}

# ---- 1. headers, and no compression of the stream --------------------------------
printf 'header line\n' >"$LOGS/headers.log"
curl -s -N --max-time 2 -H 'Accept-Encoding: gzip' -D "$TMP/h-stream" -o "$TMP/b-stream" \
  "$PROXY/api/logs/headers/stream"
check "stream through nginx: 200" [ "$(status_of "$TMP/h-stream")" = 200 ]
check "stream through nginx: Content-Type text/event-stream" \
  [ "$(header "$TMP/h-stream" content-type)" = "text/event-stream" ]
check "stream through nginx: Cache-Control no-cache" [ "$(header "$TMP/h-stream" cache-control)" = "no-cache" ]
check "stream through nginx: X-Accel-Buffering: no passes" [ "$(header "$TMP/h-stream" x-accel-buffering)" = "no" ]
check "stream through nginx: no Content-Length" [ -z "$(header "$TMP/h-stream" content-length)" ]
check "stream through nginx: not compressed (Accept-Encoding: gzip sent)" \
  [ -z "$(header "$TMP/h-stream" content-encoding)" ]
check "stream through nginx: first event intact" \
  grep -qx 'data: header line' "$TMP/b-stream"
curl -s --max-time 3 -H 'Accept-Encoding: gzip' -D "$TMP/h-page" -o /dev/null "$PROXY/"
check "page through nginx: compressed (gzip is on at the http level)" \
  [ "$(header "$TMP/h-page" content-encoding)" = "gzip" ]
# The directory's events are a stream too (the page's live list): unbuffered, not compressed.
curl -s -N --max-time 2 -H 'Accept-Encoding: gzip' -D "$TMP/h-events" -o "$TMP/b-events" "$PROXY/api/events"
check "events through nginx: 200 text/event-stream" \
  [ "$(status_of "$TMP/h-events")/$(header "$TMP/h-events" content-type)" = "200/text/event-stream" ]
check "events through nginx: not compressed (Accept-Encoding: gzip sent)" \
  [ -z "$(header "$TMP/h-events" content-encoding)" ]
check "events through nginx: event: ready arrives at once" grep -qx 'event: ready' "$TMP/b-events"

# ---- 2. lines arrive live -------------------------------------------------------
: >"$LOGS/live.log"
: >"$TMP/live.out"
(
  curl -s -N --max-time 12 "$PROXY/api/logs/live/stream" | while IFS= read -r line; do
    printf '%s %s\n' "$(now)" "$line"
  done >"$TMP/live.out"
) &
BG_PIDS+=($!)
live_reader=$!
sleep 1
for i in 1 2 3 4 5 6; do
  printf 'live %s written %s\n' "$i" "$(now)" >>"$LOGS/live.log"
  sleep 0.7
done
sleep 1
# Each line: arrival time minus the time written into the line.
awk '$2 == "data:" && $3 == "live" { n++; d = $1 - $6; if (d > max) max = d; if (d > 1.0 || d < -0.01) bad++ }
     END { printf "%d lines, max delay %.3f s, %d late\n", n, max, bad; exit !(n == 6 && bad == 0) }' \
  "$TMP/live.out" >"$TMP/live.summary"
live_ok=$?
say "live: $(cat "$TMP/live.summary")"
check "live lines through nginx: all 6 arrived, each within 1 s of being written ($(cat "$TMP/live.summary"))" \
  [ "$live_ok" -eq 0 ]

# ---- 3. keepalive comment through the proxy ---------------------------------------
check "an idle stream gets ': keepalive' through nginx (heartbeat 1 s)" \
  grep -q '^[0-9.]* : keepalive$' "$TMP/live.out"
kill -TERM "$live_reader" 2>/dev/null
wait "$live_reader" 2>/dev/null

# ---- 4. a finished log ends with event: end ---------------------------------------
created="$(curl -s --max-time 3 -X POST -D "$TMP/h-post" "$PROXY/api/logs?duration=1")"
check "POST /api/logs through nginx: 201" [ "$(status_of "$TMP/h-post")" = 201 ]
LOG_ID="$(printf '%s' "$created" | sed -n 's/.*"log_id": "\([^"]*\)".*/\1/p')"
[ -n "$LOG_ID" ] || fail_setup "no log_id in $created"
curl -s -N --max-time 10 "$PROXY/api/logs/$LOG_ID/stream" >"$TMP/finished.out"
finished_rc=$?
check "finished log through nginx: the stream closes cleanly (curl exit $finished_rc)" [ "$finished_rc" -eq 0 ]
SIZE="$(stat -c %s "$LOGS/$LOG_ID.log")"
LINES="$(wc -l <"$LOGS/$LOG_ID.log")"
last_event="$(awk 'BEGIN { RS = "" } { last = $0 } END { print last }' "$TMP/finished.out")"
expected_end="$(printf 'event: end\ndata: {"reason": "finished", "lines": %s, "bytes": %s}' "$LINES" "$SIZE")"
check "finished log through nginx: last event is end/finished with lines $LINES, bytes $SIZE" \
  [ "$last_event" = "$expected_end" ]
check "finished log through nginx: every line of the file, in order" \
  events_match_file "$TMP/finished.out" "$LOGS/$LOG_ID.log" 0

# ---- 5. reconnect with Last-Event-ID ------------------------------------------------
MID="$(awk '/^id: / { n++; if (n == 3) { print substr($0, 5); exit } }' "$TMP/finished.out")"
if [ -n "$MID" ]; then
  curl -s -N --max-time 10 -H "Last-Event-ID: $MID" -D "$TMP/h-resume" -o "$TMP/resume.out" \
    "$PROXY/api/logs/$LOG_ID/stream"
  check "resume through nginx at Last-Event-ID $MID: 200" [ "$(status_of "$TMP/h-resume")" = 200 ]
  check "resume through nginx at Last-Event-ID $MID: continues with the next line, nothing lost or repeated" \
    events_match_file "$TMP/resume.out" "$LOGS/$LOG_ID.log" "$MID"
  check "resume through nginx: ends with end/finished" grep -q '^event: end$' "$TMP/resume.out"
else
  fail "the finished log has fewer than 3 lines: cannot test a resume"
fi
code="$(curl -s -o /dev/null --max-time 5 -w '%{http_code}' -H "Last-Event-ID: $SIZE" "$PROXY/api/logs/$LOG_ID/stream")"
check "resume through nginx at the end of a finished log: 204 (got $code)" [ "$code" = 204 ]

# A live log, resumed mid-way while it grows.
printf 'r1\nr2\nr3\n' >"$LOGS/resume.log"
R_MID=3 # just past "r1\n"
(curl -s -N --max-time 3 -H "Last-Event-ID: $R_MID" "$PROXY/api/logs/resume/stream" >"$TMP/resume-live.out") &
resume_pid=$!
BG_PIDS+=("$resume_pid")
sleep 1
printf 'r4\n' >>"$LOGS/resume.log"
wait "$resume_pid" 2>/dev/null
check "resume through nginx on a growing log: r2, r3, then r4 live, nothing else" \
  events_match_file "$TMP/resume-live.out" "$LOGS/resume.log" "$R_MID"

# ---- 6. a client that leaves releases its stream ------------------------------------
check "after the proxied clients left, logcast holds no stream" wait_metric logcast_streams_open 5 0
check "logcast still answers /healthz through nginx" \
  [ "$(curl -s --max-time 3 "$PROXY/healthz")" = ok ]

# ---- 7. the systemd unit ------------------------------------------------------------
if command -v systemd-analyze >/dev/null 2>&1; then
  # Verified with the binary path replaced by the one just built (verify
  # checks that ExecStart exists).
  sed "s#/usr/local/bin/logcast#$LOGCAST_BIN#" scripts/logcast.service >"$TMP/logcast.service"
  if systemd-analyze verify "$TMP/logcast.service" >"$TMP/verify.out" 2>&1; then
    pass "scripts/logcast.service passes systemd-analyze verify"
  else
    fail "scripts/logcast.service: systemd-analyze verify: $(head -3 "$TMP/verify.out")"
  fi
else
  say "skipped: systemd-analyze is not installed (scripts/logcast.service not verified)"
fi

if [ "$FAILED" -gt 0 ]; then
  say "nginx error log (last lines):"
  tail -5 "$TMP/nginx-error.log" >&2 2>/dev/null
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
