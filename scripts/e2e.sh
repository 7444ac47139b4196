#!/usr/bin/env bash
# End-to-end browser test of the logcast page (GET /).
#
# Installs what is missing (Debian's chromium, the test's npm packages), builds
# the daemon, then runs tests/e2e/run.mjs, which starts logcast itself on a free
# port with a temporary log dir, drives /usr/bin/chromium through playwright-core
# and restarts the daemon mid-stream. Screenshots go to target/e2e/.
# Prints `N passed, N failed` last; exits non-zero on any failure.
#
#   scripts/e2e.sh                      build and test target/release/logcast
#   LOGCAST_BIN=/path/to/bin scripts/e2e.sh   test another binary, no build
#   E2E_ONLY=reconnect scripts/e2e.sh   run only scenarios whose name has it
#   E2E_KEEP=1 scripts/e2e.sh           keep the temp dir (logs, daemon stderr)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
say() { printf '[e2e] %s\n' "$*" >&2; }
fail_setup() { say "$*"; echo "0 passed, 1 failed"; exit 1; }

# ---- prerequisites -----------------------------------------------------------
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_updated=0
apt_install() {
  export DEBIAN_FRONTEND=noninteractive
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq || return 1; apt_updated=1; fi
  as_root apt-get install -y -qq "$@" >/dev/null
}

CHROMIUM="${CHROMIUM:-/usr/bin/chromium}"
if ! command -v chromium >/dev/null 2>&1 && [ ! -x "$CHROMIUM" ]; then
  say "installing chromium and chromium-driver (apt)"
  apt_install chromium chromium-driver || fail_setup "cannot install chromium"
fi
[ -x "$CHROMIUM" ] || CHROMIUM="$(command -v chromium)"
export CHROMIUM

node_major() { node -e 'process.stdout.write(process.versions.node.split(".")[0])' 2>/dev/null || echo 0; }
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "installing nodejs and npm (apt)"
  apt_install nodejs npm || fail_setup "cannot install nodejs/npm"
fi
[ "$(node_major)" -ge 20 ] || fail_setup "Node.js >= 20 is needed by playwright-core (found $(node --version 2>/dev/null || echo none))"

if [ ! -f tests/e2e/node_modules/playwright-core/package.json ]; then
  say "npm ci in tests/e2e"
  (cd tests/e2e && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error) >&2 \
    || fail_setup "npm ci failed in tests/e2e"
fi

# ---- the daemon ----------------------------------------------------------------
if [ -z "${LOGCAST_BIN:-}" ]; then
  say "cargo build --release"
  cargo build --release >&2 || fail_setup "cargo build --release failed"
  LOGCAST_BIN="$ROOT/target/release/logcast"
fi
[ -x "$LOGCAST_BIN" ] || fail_setup "no daemon binary at $LOGCAST_BIN"
export LOGCAST_BIN

# ---- run -------------------------------------------------------------------------
E2E_TMP="$(mktemp -d "${TMPDIR:-/tmp}/logcast-e2e.XXXXXX")"
export E2E_TMP
export E2E_OUT="${E2E_OUT:-$ROOT/target/e2e}"
mkdir -p "$E2E_OUT"
runner_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  # The runner normally stops its daemons and browser itself; this catches
  # whatever an interrupted or crashed run left behind.
  if [ -n "$runner_pid" ] && kill -0 "$runner_pid" 2>/dev/null; then kill -TERM "$runner_pid" 2>/dev/null || true; fi
  if [ -f "$E2E_TMP/pids" ]; then
    while read -r pid; do
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -TERM "$pid" 2>/dev/null || true
    done <"$E2E_TMP/pids"
    sleep 0.5
    while read -r pid; do
      [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    done <"$E2E_TMP/pids"
  fi
  if [ "${E2E_KEEP:-0}" = 1 ]; then say "kept $E2E_TMP"; else rm -rf "$E2E_TMP"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "daemon: $LOGCAST_BIN · browser: $CHROMIUM · screenshots: $E2E_OUT"
set +e
node tests/e2e/run.mjs &
runner_pid=$!
wait "$runner_pid"
rc=$?
set -e
runner_pid=""
exit "$rc"
