#!/usr/bin/env bash
# One million concurrent streams of one log on this machine (issue 13).
#
# Starts `logcast --workers W` (W from the 20,000-file cap: one worker per
# 15,625 streams, 64 for a million), holds N streams of one log with
# logcast-load spread over P processes (fewer than 19,000 sockets each) and K
# loopback source addresses (127.0.1.1 onwards: connect() slows badly beyond ~15,000
# ports per source address towards one port), lets them idle (heartbeats
# only), appends ONE marker line that every stream must get, then stops
# everything and checks that the memory came back. Records:
#   - connect rate (streams / ramp time) and connect failures;
#   - daemon user memory per stream (RSS of every worker, held minus before);
#   - kernel memory per stream: TCP buffers (/proc/net/sockstat "mem", pages)
#     and slab (/proc/meminfo Slab), held minus before, per stream (each stream
#     is a loopback connection: both of its ends are in these figures);
#   - idle CPU of the daemon (heartbeats: N every --heartbeat-interval) and what
#     that is per heartbeat write, beside the kernel's write floor (write-floor
#     over 19,000 sockets, run after the streams are gone);
#   - how long the line takes to reach every stream (p50/p99/max over streams);
#   - the load generator's own memory and CPU.
# Prints a summary; everything (JSON, samples, stderr) stays in
# /tmp/logcast-c1m.XXXXXX/. Every process it starts is stopped on exit.
#
# usage: scripts/c1m.sh [STREAMS] [options]     (STREAMS default 1000000)
#   --workers W        daemon workers (default: ceil(STREAMS / 15625))
#   --processes P      load processes (default: ceil(STREAMS / 18000))
#   --sources K        loopback source addresses (default 128)
#   --ramp R           connections started per second, all load processes, at most (default 20000)
#   --max-pending M    per load process, connections waiting for their head at most (default 256):
#                      the ramp follows what the daemon accepts; an open-loop ramp overflows the
#                      workers' listen queues while they are busy, and those connections end in resets
#   --idle-secs S      idle window, heartbeats only (default 32: two heartbeat periods and a bit)
#   --hold S           the marker line is appended at a random point of the first S/2 s (default 30)
#   --drain-secs S     wait after the line for the last stream to get it (default 5 + STREAMS/40000)
#   --bin PATH         the daemon (default target/release/logcast)
#   --no-floor         skip the write-floor run
#   --scale-floor      also the write floor at the same scale, after the streams are gone: W
#                      write-floors on one SO_REUSEPORT port in place of the workers, and the
#                      same logcast-load (processes, sources, ramp, --load-sched) connecting
#                      N streams to them; each writes 13-byte frames (a heartbeat) to its
#                      connections in bursts staggered over the 15 s interval as the
#                      workers' are: the kernel's cost of one heartbeat under the same
#                      contention, readers' wake-ups included (about 3 minutes more)
#   --private-floor    also the floor as BENCHMARKS section 10 measured it (its --scale-floor):
#                      W write-floors of the workers' shares, each read by a client process
#                      of its own on its own address pair, so one reader to wake per burst
#                      instead of the load's 56 (about 3 minutes more)
#   --load-sched S     the load generator's scheduling policy: batch (default) or normal.
#                      Real clients are on other machines; here 56 load processes share two
#                      cores with the workers, and with `normal` each stream's wake-up may
#                      preempt the worker mid-fan-out (SCHED_BATCH tasks do not preempt on
#                      wake-up: `chrt --batch 0`), which charges the client's scheduling to
#                      the daemon's CPU and latency
#   --build            cargo build --release --workspace first (default: only if a binary is missing)
#   --force            run even if MemAvailable looks too small (~13 KiB per stream needed)
#   -h, --help
# Smoke test: scripts/c1m.sh 20000 --idle-secs 16 --hold 10
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REL="$ROOT/target/release"
N=1000000
W=""
P=""
K=128
RAMP=20000
PENDING=256
IDLE=32
HOLD=30
DRAIN=""
BIN=""
FLOOR=1
SCALE_FLOOR=0
PRIVATE_FLOOR=0
LOAD_SCHED=batch
BUILD=0
FORCE=0

die() { echo "c1m: $*" >&2; exit 1; }
say() { echo "c1m: $(date +%T) $*" >&2; }
# shellcheck source=scripts/lib.sh
. "$ROOT/scripts/lib.sh"

while [ $# -gt 0 ]; do
  case "$1" in
    --workers) W="$2"; shift 2 ;;
    --processes) P="$2"; shift 2 ;;
    --sources) K="$2"; shift 2 ;;
    --ramp) RAMP="$2"; shift 2 ;;
    --max-pending) PENDING="$2"; shift 2 ;;
    --idle-secs) IDLE="$2"; shift 2 ;;
    --hold) HOLD="$2"; shift 2 ;;
    --drain-secs) DRAIN="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    --no-floor) FLOOR=0; shift ;;
    --scale-floor) SCALE_FLOOR=1; shift ;;
    --private-floor) PRIVATE_FLOOR=1; shift ;;
    --load-sched) LOAD_SCHED="$2"; shift 2 ;;
    --build) BUILD=1; shift ;;
    --force) FORCE=1; shift ;;
    -h|--help) usage; exit 0 ;;
    [0-9]*) N="$1"; shift ;;
    *) echo "c1m: unknown option '$1' (see --help)" >&2; exit 2 ;;
  esac
done
for v in N K RAMP PENDING IDLE HOLD; do
  [[ "${!v}" =~ ^[0-9]+$ ]] || { echo "c1m: $v must be a whole number: '${!v}'" >&2; exit 2; }
done
W="${W:-$(( (N + 15624) / 15625 ))}"
P="${P:-$(( (N + 17999) / 18000 ))}"
DRAIN="${DRAIN:-$(( 5 + N / 40000 ))}"
[ "$K" -ge 1 ] && [ "$K" -le 65000 ] || die "--sources: 1..65000"

release_bins

# ---- the machine -------------------------------------------------------------
meminfo() { awk -v k="$1:" '$1 == k { print $2 }' /proc/meminfo; } # KiB
tcp_mem_kib() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) * 4 }' /proc/net/sockstat; }
tcp_inuse() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "inuse") print $(i + 1) }' /proc/net/sockstat; }
avail0="$(meminfo MemAvailable)"
need=$(( N * 13 ))
if [ "$avail0" -lt "$need" ] && [ "$FORCE" = 0 ]; then
  die "MemAvailable is $((avail0 / 1024)) MiB; $N streams need about $((need / 1024)) MiB (kernel ~10 KiB per loopback pair): use fewer streams or --force"
fi
hard="$(ulimit -Hn)"
per_worker=$(( (N + W - 1) / W ))
[ "$hard" = unlimited ] || [ "$per_worker" -lt "$((hard - 700))" ] \
  || die "$W workers hold $per_worker streams each: over what $hard files leave (use more --workers)"

RES="$(mktemp -d /tmp/logcast-c1m.XXXXXX)"
chmod 755 "$RES"
mkdir -p "$RES/logs"
LOG_ID="c1m"
MARK="$RES/logs/$LOG_ID.log"
: >"$MARK"
SUP=""
LOAD=""
SAMPLER=""
FLOORS=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM HUP
  [ -n "$SAMPLER" ] && kill "$SAMPLER" 2>/dev/null || true
  [ -n "$LOAD" ] && kill -TERM "$LOAD" 2>/dev/null || true
  # shellcheck disable=SC2086 # a list of pids
  [ -n "$FLOORS" ] && kill -TERM $FLOORS 2>/dev/null || true
  if [ -n "$SUP" ] && kill -0 "$SUP" 2>/dev/null; then
    kill -TERM "$SUP" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$SUP" 2>/dev/null || true
  fi
  wait 2>/dev/null || true
  rm -f "$MARK"
  say "results in $RES"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

{
  echo "date: $(date -u +%FT%TZ)"
  echo "machine: $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), $(( $(meminfo MemTotal) / 1048576 )) GiB, Linux $(uname -r), open files $(ulimit -Hn)"
  echo "net.ipv4.tcp_migrate_req=$(cat /proc/sys/net/ipv4/tcp_migrate_req 2>/dev/null || echo '?') net.ipv4.tcp_mem=$(tr '\t' ' ' </proc/sys/net/ipv4/tcp_mem 2>/dev/null || echo '?') (pages)"
  echo "streams=$N workers=$W processes=$P sources=$K ramp=$RAMP max-pending=$PENDING idle=$IDLE hold=$HOLD drain=$DRAIN"
} | tee "$RES/setup.txt" >&2

base_slab="$(meminfo Slab)"
base_tcp="$(tcp_mem_kib)"
base_inuse="$(tcp_inuse)"

# ---- the daemon ----------------------------------------------------------------
say "starting logcast --workers $W"
: >"$RES/daemon.out"
t0=$(date +%s%N)
RUST_LOG=info "$BIN" --port 0 --log-dir "$RES/logs" --workers "$W" --max-connections $(( N + N / 10 + 100 )) \
  >"$RES/daemon.out" 2>"$RES/daemon.err" &
SUP=$!
URL=""
for _ in $(seq 1 600); do
  URL="$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$RES/daemon.out" | head -1 || true)"
  [ -n "$URL" ] && break
  kill -0 "$SUP" 2>/dev/null || { cat "$RES/daemon.err" >&2; die "logcast did not start"; }
  sleep 0.1
done
[ -n "$URL" ] || die "logcast printed no URL within 60 s"
start_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
say "$W workers listening at $URL after $start_ms ms"

# Memory and CPU every 2 s while the streams live.
sampler() {
  echo -e "t\tslab_kib\ttcp_mem_kib\ttcp_inuse\tmem_available_kib"
  while :; do
    printf '%s\t%s\t%s\t%s\t%s\n' "$(date +%s)" "$(meminfo Slab)" "$(tcp_mem_kib)" "$(tcp_inuse)" "$(meminfo MemAvailable)"
    sleep 2
  done
}
sampler >"$RES/samples.tsv" &
SAMPLER=$!

# ---- the streams ---------------------------------------------------------------
# The ramp slows as streams accumulate (every held stream costs heartbeats):
# allow 1 s per 2,500 streams (400 s for a million) for all to connect.
ready=$(( 60 + N / 2500 ))
limit=$(( ready + 60 + IDLE + HOLD + DRAIN ))
say "logcast-load: $N streams from $P processes and $K source addresses, ramp $RAMP/s; bounded to $limit s"
rate="$(python3 -c "print(2 / $HOLD)")" # one mark, at a random point of the first half of the hold
# Source addresses 127.0.1.1 onwards: 127.0.0.1 is every other program's
# loopback address, and its ephemeral ports collide with explicit ones.
SRCS="$(python3 -c "import ipaddress; print(','.join(str(ipaddress.IPv4Address('127.0.1.0') + i) for i in range(1, $K + 1)))")"
case "$LOAD_SCHED" in
  batch) sched=(chrt --batch 0) ;;
  normal) sched=() ;;
  *) die "--load-sched: batch or normal, not '$LOAD_SCHED'" ;;
esac
cmd=(timeout --kill-after=10 "$limit" "${sched[@]}" "$REL/logcast-load" --url "$URL/api/logs/$LOG_ID/stream"
  --streams "$N" --processes "$P" --source-addrs "$SRCS" --ramp "$RAMP" --max-pending "$PENDING" --timeout 60 --ready-timeout "$ready"
  --idle-secs "$IDLE" --hold "$(( HOLD / 2 ))" --mark-rate "$rate" --drain-ms "$(( DRAIN * 1000 + HOLD * 500 ))"
  --mark-file "$MARK" --pid "$SUP" --pid-tree --expect-marks --json)
echo "${cmd[*]}" | sed "s/--source-addrs [^ ]*/--source-addrs 127.0.1.1,...(${K})/" >"$RES/command.txt"
set +e
"${cmd[@]}" >"$RES/load.json" 2>"$RES/load.err" &
LOAD=$!
wait "$LOAD"
load_rc=$?
set -e
LOAD=""
tail -n 25 "$RES/load.err" >&2
[ -s "$RES/load.json" ] || die "logcast-load failed (exit $load_rc): see $RES/load.err"

# Memory while held: the highest sample.
read -r peak_slab peak_tcp peak_inuse < <(awk 'NR > 1 { if ($2 > s) s = $2; if ($3 > t) t = $3; if ($4 > u) u = $4 } END { print s + 0, t + 0, u + 0 }' "$RES/samples.tsv")
kill "$SAMPLER" 2>/dev/null || true
SAMPLER=""

# ---- stop, and check the memory came back ---------------------------------------
say "stopping the daemon"
t0=$(date +%s%N)
kill -TERM "$SUP"
for _ in $(seq 1 300); do kill -0 "$SUP" 2>/dev/null || break; sleep 0.1; done
stop_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
kill -0 "$SUP" 2>/dev/null && { kill -KILL "$SUP"; say "supervisor still alive after 30 s: killed"; }
wait "$SUP" 2>/dev/null || true
SUP=""
left="$(pgrep -f "^$REL/logcast-load" | wc -l || true)"
for _ in $(seq 1 60); do
  [ "$(tcp_inuse)" -le $(( base_inuse + 1000 )) ] && break
  sleep 1
done
after_avail="$(meminfo MemAvailable)"
after_inuse="$(tcp_inuse)"
after_tcp="$(tcp_mem_kib)"

if [ "$FLOOR" = 1 ]; then
  fs=$(( N < 19000 ? N : 19000 ))
  say "write-floor over $fs sockets (the kernel's cost of one write, for the heartbeats)"
  timeout 300 "$REL/write-floor" --sockets "$fs" --rounds 10 --pause-ms 500 --drain --json >"$RES/floor.json" 2>"$RES/floor.err" || true
fi

# How many of the W write-floors in DIR said they are set up, waiting at most
# SECS for all of them.
floors_ready() {
  local dir="$1" secs="$2" n=0
  for _ in $(seq 1 $(( secs * 10 ))); do
    n="$(find "$dir" -name '*.ready' | wc -l)"
    [ "$n" -ge "$W" ] && break
    sleep 0.1
  done
  echo "$n"
}

# The floor at scale: W write-floors sharing one port with SO_REUSEPORT, as
# the workers do, and the same load generator connecting to them as to the
# daemon (processes, source addresses, ramp): the kernel's share of a
# heartbeat, readers' wake-ups included, with nothing of the daemon's.
scale_floor() {
  local dir="$RES/scale-floor" i pids=() port fload
  mkdir -p "$dir"
  port="$(free_port)"
  say "write floor at scale: $W write-floors on port $port, 13-byte bursts staggered over 15 s"
  for i in $(seq 0 $(( W - 1 ))); do
    local phase=$(( i * 15000 / W ))
    timeout 900 "$REL/write-floor" --serve "$port" --frame-bytes 13 --rounds 3 --pause-ms 15000 \
      --phase-ms "$phase" --linger-ms $(( 15000 - phase )) --nodelay \
      --ready-file "$dir/$i.ready" --go-file "$dir/go" --json >"$dir/$i.json" 2>"$dir/$i.err" &
    pids+=($!)
  done
  FLOORS="${pids[*]}"
  if [ "$(floors_ready "$dir" 60)" -lt "$W" ]; then
    say "write floor at scale: not every write-floor started (see $dir/*.err): skipped"
    return 0
  fi
  # bursts start 15 s after the word to go; every write-floor closes 75 s after it
  "${sched[@]}" "$REL/logcast-load" --url "http://127.0.0.1:$port/floor" --streams "$N" --processes "$P" \
    --source-addrs "$SRCS" --ramp "$RAMP" --max-pending "$PENDING" --timeout 60 --ready-timeout "$ready" \
    --hold 80 --drain-ms 0 --json >"$dir/load.json" 2>"$dir/load.err" &
  fload=$!
  LOAD=$fload
  for _ in $(seq 1 $(( ready * 10 ))); do
    grep -q "ramp done\|not every stream resolved" "$dir/load.err" 2>/dev/null && break
    kill -0 "$fload" 2>/dev/null || break
    sleep 0.1
  done
  say "write floor at scale: $(grep -o 'ramp done: [0-9]* connected' "$dir/load.err" || echo 'ramp not done') to $W write-floors; measuring (about 75 s)"
  touch "$dir/go"
  wait "${pids[@]}" || true
  FLOORS=""
  # its hold ends a few seconds after the write-floors close: let it report
  wait "$fload" 2>/dev/null || true
  LOAD=""
}
# The floor with private clients (--private-floor; section 10's --scale-floor):
# W write-floors of the workers' shares, each with its own client process on
# its own address pair, set up together, then measured together.
private_floor() {
  local dir="$RES/private-floor" i pids=() addrs src
  [ "$W" -le 250 ] || { say "--private-floor: at most 250 workers (one address pair each): skipped"; return 0; }
  mkdir -p "$dir"
  # Listen on 127.0.2.x, connect from 127.0.4.x: one address pair per write-floor.
  addrs="$(python3 -c "import ipaddress; print(' '.join(str(ipaddress.IPv4Address('127.0.2.0') + i) for i in range(1, $W + 1)))")"
  local batch=()
  [ "$LOAD_SCHED" = batch ] && batch=(--client-batch)
  say "private floor: $W write-floors x $per_worker sockets with a client each, 13-byte bursts staggered over 15 s"
  i=0
  for addr in $addrs; do
    src="${addr/127.0.2./127.0.4.}"
    timeout 900 "$REL/write-floor" --sockets "$per_worker" --frame-bytes 13 --rounds 3 --pause-ms 15000 \
      --phase-ms $(( i * 15000 / W )) --drain --nodelay "${batch[@]}" --listen "$addr" --source "$src" \
      --ready-file "$dir/$i.ready" --go-file "$dir/go" --json >"$dir/$i.json" 2>"$dir/$i.err" &
    pids+=($!)
    i=$(( i + 1 ))
  done
  FLOORS="${pids[*]}"
  say "private floor: $(floors_ready "$dir" 600) of $W set up; measuring (about 75 s)"
  touch "$dir/go"
  wait "${pids[@]}" || true
  FLOORS=""
}
[ "$SCALE_FLOOR" = 1 ] && scale_floor
[ "$PRIVATE_FLOOR" = 1 ] && private_floor

# ---- summary ---------------------------------------------------------------------
python3 - "$RES" "$N" "$W" "$P" "$K" "$start_ms" "$stop_ms" "$base_slab" "$peak_slab" "$base_tcp" "$peak_tcp" \
  "$base_inuse" "$peak_inuse" "$avail0" "$after_avail" "$after_inuse" "$after_tcp" "$left" <<'PY' | tee "$RES/results.txt"
import json, os, sys
(res, n, w, p, k, start_ms, stop_ms, base_slab, peak_slab, base_tcp, peak_tcp,
 base_inuse, peak_inuse, avail0, after_avail, after_inuse, after_tcp, left) = sys.argv[1:19]
n, w = int(n), int(w)
d = json.load(open(os.path.join(res, "load.json")))
floor = None
try:
    floor = json.load(open(os.path.join(res, "floor.json"))).get("cpu_us_per_write")
except (OSError, ValueError):
    pass
def floors(name):
    """A floor at scale (--scale-floor, --private-floor): each write-floor's
    median per write, sorted, and all their CPU over all their writes."""
    medians, cpu_us, writes = [], 0.0, 0
    fdir = os.path.join(res, name)
    for fname in sorted(os.listdir(fdir)) if os.path.isdir(fdir) else []:
        if fname.split(".")[0].isdigit() and fname.endswith(".json"):
            try:
                f = json.load(open(os.path.join(fdir, fname)))
                medians.append(f["cpu_us_per_write"])
                cpu_us += f["cpu_us_per_write_mean"] * f["sockets"] * f["rounds"]
                writes += f["sockets"] * f["rounds"]
            except (OSError, ValueError, KeyError):
                pass
    medians.sort()
    return medians, (cpu_us / writes if writes else None)
scale, scale_mean = floors("scale-floor")
scale_floor = scale[len(scale) // 2] if scale else None
private, private_mean = floors("private-floor")
private_floor = private[len(private) // 2] if private else None
scale_conn = None
try:
    scale_conn = json.load(open(os.path.join(res, "scale-floor", "load.json"))).get("connected")
except (OSError, ValueError):
    pass
heartbeat_ms = 15000
conn = d.get("connected") or 0
ramp = d.get("ramp_secs") or 0
lat = d.get("latency_ms") or {}
idle = d.get("cpu_idle_pct")
per_hb_us = idle / 100 / (conn / (heartbeat_ms / 1000)) * 1e6 if idle and conn else None
def kib_per(delta_kib):
    return delta_kib * 1024 / conn if conn else 0
rows = [
    ("streams connected", f"{conn:,} of {n:,} ({d.get('failed')})"),
    ("every stream got the line", "yes" if d.get("streams_missing_marks") == 0 and d.get("marks_written") else f"no: {d.get('streams_missing_marks')} streams missed it"),
    ("connect rate", f"{conn / ramp:,.0f} streams/s ({ramp:.1f} s ramp; connect p50 {d['connect_ms']['p50']:.1f} ms, p99 {d['connect_ms']['p99']:.1f} ms)" if ramp else "-"),
    ("workers started in", f"{start_ms} ms ({w} workers)"),
    ("daemon user memory", f"{d.get('rss_per_stream_bytes')} B per stream ({d.get('rss_kib', 0) / 1024:,.0f} MiB held, {d.get('rss_base_kib', 0) / 1024:,.0f} MiB before)"),
    ("kernel: TCP buffers", f"{kib_per(int(peak_tcp) - int(base_tcp)):,.0f} B per stream ({(int(peak_tcp) - int(base_tcp)) / 1024:,.0f} MiB; sockstat TCP inuse {int(peak_inuse) - int(base_inuse):,})"),
    ("TCP memory pressure", (lambda m: f"peak {int(peak_tcp) // 4:,} pages; tcp_mem {m[1]:,} (pressure) / {m[2]:,} (limit)" + (": OVER the pressure mark" if int(peak_tcp) // 4 > m[1] else ""))([int(x) for x in open("/proc/sys/net/ipv4/tcp_mem").read().split()])),
    ("kernel: slab", f"{kib_per(int(peak_slab) - int(base_slab)):,.0f} B per stream ({(int(peak_slab) - int(base_slab)) / 1024:,.0f} MiB)"),
    ("idle CPU (heartbeats)", f"{idle:.1f} % of one core = {per_hb_us:.1f} us per heartbeat write" + (f" ({per_hb_us / floor:.2f}x the write floor {floor:.1f} us)" if floor and per_hb_us else "") if idle is not None else "-"),
    ("write floor at scale", f"{scale_floor:.1f} us per 13-byte write, median of {len(scale)} write-floors (range {scale[0]:.1f}-{scale[-1]:.1f}; all writes {scale_mean:.1f} us) to {scale_conn or 0:,} streams of the same load" + (f"; a heartbeat is {per_hb_us / scale_floor:.2f}x it" if per_hb_us else "") if scale_floor else "- (--scale-floor not given)"),
    ("private floor", f"{private_floor:.1f} us per 13-byte write, median of {len(private)} write-floors with a client each (range {private[0]:.1f}-{private[-1]:.1f}; all writes {private_mean:.1f} us)" + (f"; a heartbeat is {per_hb_us / private_floor:.2f}x it" if per_hb_us else "") if private_floor else "- (--private-floor not given)"),
    ("one line to every stream", f"p50 {lat.get('p50', 0) / 1000:.2f} s, p99 {lat.get('p99', 0) / 1000:.2f} s, max {lat.get('max', 0) / 1000:.2f} s (from append to receipt)"),
    ("load generator", f"{d.get('loadgen_cpu_pct', 0):.1f} % CPU over the hold, {d.get('loadgen_rss_kib', 0) / 1024:,.0f} MiB RSS = {d.get('loadgen_rss_kib', 0) * 1024 / max(conn, 1):.0f} B per stream ({p} processes, {k} source addresses)"),
    ("stop", f"{stop_ms} ms for SIGTERM to the supervisor; load processes left: {left}"),
    ("memory returned", f"MemAvailable {int(avail0) // 1024:,} MiB before, {int(after_avail) // 1024:,} MiB after; TCP inuse {after_inuse}, TCP mem {int(after_tcp) // 1024} MiB"),
]
print()
for a, b in rows:
    print(f"{a:28} {b}")
print()
print("command:", open(os.path.join(res, "command.txt")).read().strip())
PY
