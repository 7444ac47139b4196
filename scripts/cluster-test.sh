#!/usr/bin/env bash
# End-to-end test of a logcast cluster: three daemons sharing one log dir
# behind nginx (scripts/cluster.sh), a node lost mid-stream, clients resuming
# through nginx by Last-Event-ID.
#
# Three rounds, one log each (POST /api/logs?duration=6 through nginx, daemons
# writing a line every 100 ms):
#   1. streams are opened through nginx until every node holds some (which node
#      took a stream is seen in each node's own /metrics, logcast_streams_open);
#   2. the node whose writer writes the log is found (logcast_writers_active 1);
#      a node is stopped: round 1, a node that is NOT the writer, by SIGTERM
#      (its streams get `event: shutdown`); round 2, a non-writer by SIGKILL
#      (its streams are cut); round 3, the writer's node by SIGTERM (it marks
#      its log finished, read-only, as it stops);
#   3. the stopped node's clients reconnect through nginx with Last-Event-ID =
#      the last id seen (as EventSource does) and land on a surviving node;
#   4. every stream, resumed or not, must have received exactly the file's lines
#      (nothing lost, nothing repeated, ids = byte offsets) and end with
#      `event: end` {"reason": "finished"} (round 3: or 204 on a reconnect that
#      already had every line).
# Between rounds the stopped node is started again. At the end the cluster is
# stopped (every daemon must exit 0 on SIGTERM).
# (A SIGKILLed writer is not tested: its log stays writable, so nobody ever
# finishes it; its streams follow it until their clients leave.)
#
# Needs curl, python3 (standard library only) and nginx (installed by
# scripts/cluster.sh when missing). Cleans up after itself, is bounded in time,
# prints `N passed, N failed` last and exits non-zero on any failure.
#
#   CLUSTER_TEST_KEEP=1 scripts/cluster-test.sh   keep the cluster dir (logs, nginx logs)
#   LOGCAST_BIN=/path/to/logcast scripts/cluster-test.sh   test that binary, no build
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[cluster-test] %s\n' "$*" >&2; }

WORK="$(mktemp -d "${TMPDIR:-/tmp}/logcast-cluster-test.XXXXXX")"
export CLUSTER_DIR="$WORK/cluster"
export CLUSTER_NODES=3
export LOGCAST_ARGS="--write-interval-ms 100 --poll-interval-ms 50"
RESULTS="$WORK/results"
: >"$RESULTS"
finished=0
scenario_pid=""

record() { echo "$1 $2" >>"$RESULTS"; if [ "$1" = ok ]; then say "ok - $2"; else say "FAIL - $2"; fi; }

summary() {
  local passed failed
  passed=$(grep -c '^ok ' "$RESULTS" 2>/dev/null || true)
  failed=$(grep -c '^fail ' "$RESULTS" 2>/dev/null || true)
  echo "${passed:-0} passed, ${failed:-0} failed"
  [ "${failed:-0}" -eq 0 ] && [ "${passed:-0}" -gt 0 ]
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$scenario_pid" ] && kill -0 "$scenario_pid" 2>/dev/null; then
    kill -TERM "$scenario_pid" 2>/dev/null || true
  fi
  if [ "$finished" = 0 ]; then
    # Interrupted or failed early: stop whatever runs, count it as a failure.
    [ "$rc" = 0 ] || record fail "run interrupted (status $rc)"
    scripts/cluster.sh stop >/dev/null 2>&1 || true
  fi
  # Last resort: nothing of this run may survive it.
  for f in "$CLUSTER_DIR"/node-*/pid "$CLUSTER_DIR/nginx/nginx.pid"; do
    [ -f "$f" ] || continue
    p=$(cat "$f" 2>/dev/null || true)
    [ -n "$p" ] && kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null || true
  done
  local out
  out=$(summary) && rc=0 || rc=1
  if [ "${CLUSTER_TEST_KEEP:-0}" = 1 ]; then say "kept $WORK"; else rm -rf "$WORK"; fi
  echo "$out"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for tool in curl python3; do
  command -v "$tool" >/dev/null 2>&1 || { record fail "$tool is needed"; exit 1; }
done

# The build is not part of the time bound; everything after it is.
if [ -z "${LOGCAST_BIN:-}" ]; then
  say "cargo build --release"
  cargo build --release --quiet >&2 || { record fail "cargo build --release"; exit 1; }
  export LOGCAST_BIN="$ROOT/target/release/logcast"
fi

if timeout 60 scripts/cluster.sh start >"$WORK/url"; then
  record ok "cluster of 3 nodes and nginx started: $(cat "$WORK/url")"
else
  record fail "scripts/cluster.sh start"
  exit 1
fi

cat >"$WORK/scenario.py" <<'PY'
"""The cluster scenario (see scripts/cluster-test.sh). Standard library only."""
import http.client
import os
import signal
import subprocess
import sys
import threading
import time
from urllib.parse import urlparse

CLUSTER_DIR = os.environ["CLUSTER_DIR"]
RESULTS = sys.argv[1]
ROOT = sys.argv[2]
NGINX = urlparse(open(os.path.join(CLUSTER_DIR, "url")).read().strip())
LOGS = os.path.join(CLUSTER_DIR, "logs")
NODES = [1, 2, 3]


def record(ok, what):
    with open(RESULTS, "a") as f:
        f.write(("ok " if ok else "fail ") + what.replace("\n", " ") + "\n")
    print(("ok - " if ok else "FAIL - ") + what, file=sys.stderr, flush=True)
    return ok


def note(msg):
    print("[scenario] " + msg, file=sys.stderr, flush=True)


def node_file(i, name):
    try:
        with open(os.path.join(CLUSTER_DIR, f"node-{i}", name)) as f:
            return f.read().strip()
    except OSError:
        return ""


def node_port(i):
    return int(node_file(i, "port"))


def node_pid(i):
    p = node_file(i, "pid")
    return int(p) if p else None


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except OSError:
        return False


def request(host, port, method, path, timeout=5):
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request(method, path, headers={"Connection": "close"})
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def metrics(i):
    """A node's own /metrics, asked on its port (not through nginx)."""
    _, body = request("127.0.0.1", node_port(i), "GET", "/metrics")
    out = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def streams_open():
    return {i: int(metrics(i).get("logcast_streams_open", -1)) for i in NODES}


def file_lines(log_id):
    with open(os.path.join(LOGS, log_id + ".log"), "rb") as f:
        content = f.read()
    lines, ids, start = [], [], 0
    for n, b in enumerate(content):
        if b == 0x0A:
            lines.append(content[start:n].rstrip(b"\r").decode("utf-8", "replace"))
            ids.append(str(n + 1))
            start = n + 1
    return lines, ids, len(content)


class Stream(threading.Thread):
    """An SSE client through nginx that reconnects like EventSource: after a
    disconnect (or `event: shutdown`) it reconnects with Last-Event-ID."""

    def __init__(self, log_id, deadline):
        super().__init__(daemon=True)
        self.log_id = log_id
        self.deadline = deadline
        self.lines, self.ids = [], []
        self.last_id = None
        self.end = None
        self.shutdowns = 0
        self.connections = 0
        self.statuses = []
        self.errors = []
        self.opened = threading.Event()
        self.node = None  # the node that took the first connection

    def run(self):
        while time.time() < self.deadline and self.end is None:
            try:
                if self.connect_once():
                    return
            except (OSError, http.client.HTTPException) as e:
                self.errors.append(type(e).__name__ + ": " + str(e))
            finally:
                self.opened.set()
            time.sleep(0.2)  # EventSource would wait its retry delay

    def connect_once(self):
        """One connection; True when the stream is over for good."""
        remaining = max(1.0, self.deadline - time.time())
        c = http.client.HTTPConnection(NGINX.hostname, NGINX.port, timeout=remaining)
        try:
            headers = {"Accept": "text/event-stream"}
            if self.last_id is not None:
                headers["Last-Event-ID"] = self.last_id
            c.request("GET", f"/api/logs/{self.log_id}/stream", headers=headers)
            r = c.getresponse()
            self.connections += 1
            self.statuses.append(r.status)
            self.opened.set()
            if r.status == 204:
                return True  # EventSource stops: nothing more to read
            if r.status != 200:
                r.read()
                return False
            buf = b""
            while True:
                chunk = r.read1(65536)
                if not chunk:
                    return False
                buf += chunk
                while b"\n\n" in buf:
                    block, buf = buf.split(b"\n\n", 1)
                    if self.event(block):
                        return True
        finally:
            c.close()

    def event(self, block):
        fields = {}
        data = []
        for line in block.decode("utf-8", "replace").split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            else:
                fields[name] = value
        kind = fields.get("event")
        if "id" in fields:
            self.last_id = fields["id"]
        if kind is None and data:
            self.lines.append("\n".join(data))
            self.ids.append(fields.get("id"))
        elif kind == "end":
            self.end = "\n".join(data)
            return True
        elif kind == "shutdown":
            self.shutdowns += 1
        return False


def create_log(duration):
    status, body = request(NGINX.hostname, NGINX.port, "POST", f"/api/logs?duration={duration}")
    if not record(status == 201, f"POST /api/logs?duration={duration} through nginx: {status}"):
        return None
    import json
    return json.loads(body)["log_id"]


def run_round(name, sig, kill_writer=False):
    note(f"{name}: stop {'the writer' if kill_writer else 'a non-writer'} node with {sig.name}")
    log_id = create_log(6)
    if log_id is None:
        return False
    deadline = time.time() + 25

    # Which node writes it?
    writers = {i: metrics(i).get("logcast_writers_active", 0) for i in NODES}
    writer = [i for i, v in writers.items() if v == 1]
    record(len(writer) == 1, f"{name}: exactly one node writes the log (writers_active {writers})")
    writer = writer[0] if len(writer) == 1 else None

    # Open streams through nginx until every node holds at least one (two if
    # nginx keeps spreading): which node took each is seen in the nodes' own
    # streams_open.
    streams = []
    per_node = {i: [] for i in NODES}
    open_until = time.time() + 4
    while time.time() < open_until and len(streams) < 20:
        if all(len(v) >= 2 for v in per_node.values()):
            break
        before = streams_open()
        s = Stream(log_id, deadline)
        s.start()
        s.opened.wait(5)
        took = None
        t = time.time() + 1.5
        while time.time() < t and took is None:
            now = streams_open()
            grown = [i for i in NODES if now[i] == before[i] + 1]
            if len(grown) == 1 and sum(now.values()) == sum(before.values()) + 1:
                took = grown[0]
            else:
                time.sleep(0.02)
        s.node = took
        streams.append(s)
        if took is not None:
            per_node[took].append(s)
    spread = {i: len(v) for i, v in per_node.items()}
    if not record(all(spread.values()), f"{name}: {len(streams)} streams through nginx reached every node {spread}"):
        return False
    if not record(all(s.node is not None for s in streams), f"{name}: the node of every stream is known"):
        return False

    victim = writer if kill_writer else next((i for i in NODES if i != writer), None)
    if writer is None or victim is None:
        return False
    # Let every stream receive some lines first.
    t = time.time() + 5
    while time.time() < t and not all(len(s.lines) >= 5 for s in streams):
        time.sleep(0.05)
    pid = node_pid(victim)
    cut = {s: len(s.lines) for s in per_node[victim]}
    note(f"{name}: writer node {writer}; {sig.name} to node {victim} (pid {pid}) holding "
         f"{len(per_node[victim])} streams at lines {sorted(cut.values())}")
    os.kill(pid, sig)
    t = time.time() + 5
    while alive(pid) and time.time() < t:
        time.sleep(0.02)
    t = time.time() + 2
    while not node_file(victim, "exit") and time.time() < t:
        time.sleep(0.02)
    code = node_file(victim, "exit")
    want = "0" if sig == signal.SIGTERM else str(128 + int(sig))
    record(code == want, f"{name}: node {victim} exit status after {sig.name}: {code or 'none'} (want {want})")

    for s in streams:
        s.join(max(0.1, deadline - time.time()))
    lines, ids, size = file_lines(log_id)
    mode = os.stat(os.path.join(LOGS, log_id + ".log")).st_mode
    record(mode & 0o222 == 0, f"{name}: the log is finished (read-only, mode {oct(mode & 0o777)}), {len(lines)} lines")
    want_end = f'{{"reason": "finished", "lines": {len(lines)}, "bytes": {size}}}'

    for n, s in enumerate(streams):
        who = f"{name}: stream {n} (node {s.node}{', resumed' if s.node == victim else ''})"
        if s.node == victim:
            ok = s.connections >= 2 and (cut[s] < len(lines) or kill_writer)
            record(ok, f"{who}: reconnected through nginx after line {cut[s]} "
                       f"(connections {s.connections}, statuses {s.statuses}, errors {s.errors[:2]})")
            if sig == signal.SIGTERM:
                record(s.shutdowns >= 1, f"{who}: got event: shutdown before the reconnect")
            if kill_writer and s.statuses[-1:] == [204]:
                # It had every line when its node stopped (and finished the
                # log): the reconnect at the end of a finished log gets 204,
                # which stops EventSource, instead of `event: end`.
                record(s.lines == lines and s.ids == ids and s.end is None,
                       f"{who}: every line, then 204 on the reconnect at the end")
                continue
        else:
            record(s.connections == 1, f"{who}: one connection to a surviving node "
                                       f"(connections {s.connections}, errors {s.errors[:2]})")
        missing = len(lines) - len(s.lines)
        same = s.lines == lines and s.ids == ids
        detail = ""
        if not same:
            first = next((k for k in range(min(len(lines), len(s.lines))) if s.lines[k] != lines[k]), None)
            detail = f" (got {len(s.lines)} lines, file {len(lines)}; first difference at {first}; missing {missing})"
        record(same, f"{who}: exactly the file's lines and offsets, nothing lost or repeated{detail}")
        record(s.end == want_end, f"{who}: event: end {s.end} (want {want_end})")
    return victim


def node_start(i):
    r = subprocess.run([os.path.join(ROOT, "scripts", "cluster.sh"), "node-start", str(i)],
                       stdout=subprocess.DEVNULL, timeout=30)
    return record(r.returncode == 0, f"node {i} started again")


def rejoin(victim):
    if not node_start(victim):
        return False
    # nginx leaves a failed node alone for fail_timeout (2 s), then sends
    # it one request at a time until one completes: a stream completes
    # only when it ends, so short requests put the node back in rotation.
    time.sleep(2.5)
    for _ in range(6):
        request(NGINX.hostname, NGINX.port, "GET", "/healthz")
    return True


# 1. A node that is not the writer stops gracefully; 2. one is killed; 3. the
# writer's node stops gracefully: it marks its log finished (read-only) as it
# goes, so every stream, on every node, ends with `finished` (or, for a client
# of the stopped node that already had every line, 204 on its reconnect).
victim = run_round("round 1", signal.SIGTERM)
if victim and rejoin(victim):
    victim = run_round("round 2", signal.SIGKILL)
    if victim and rejoin(victim):
        run_round("round 3", signal.SIGTERM, kill_writer=True)
PY

say "scenario (bounded to 120 s)"
set +e
timeout 120 python3 "$WORK/scenario.py" "$RESULTS" "$ROOT" &
scenario_pid=$!
wait "$scenario_pid"
rc=$?
set -e
scenario_pid=""
[ "$rc" = 0 ] || record fail "scenario exited with status $rc"

if scripts/cluster.sh stop; then
  record ok "cluster stopped: nginx and every node exited 0 on SIGTERM"
else
  record fail "cluster stop (a node did not exit 0 on SIGTERM)"
fi
left=""
for f in "$CLUSTER_DIR"/node-*/pid "$CLUSTER_DIR/nginx/nginx.pid"; do
  [ -f "$f" ] || continue
  p=$(cat "$f")
  kill -0 "$p" 2>/dev/null && left+=" $p"
done
if [ -z "$left" ]; then record ok "no process of the cluster remains"; else record fail "still running:$left"; fi
finished=1
