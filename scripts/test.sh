#!/usr/bin/env bash
# Runs every test of logcast, on a fresh machine too: installs what the tests
# need when it is missing (Chromium for the browser test, nginx for the proxy
# test, the browser test's npm packages), then runs `cargo test` (unit and
# integration tests over real sockets), builds the benches, and runs the
# end-to-end scripts. Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v curl >/dev/null 2>&1 || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "== installing: ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

echo "== cargo test"
mkdir -p target
cargo test --release --workspace 2>&1 | tee target/cargo-test.log
grep -q "test result" target/cargo-test.log

echo "== cargo bench --no-run"
cargo bench --no-run --quiet

for script in scripts/e2e.sh scripts/proxy-test.sh scripts/cluster-test.sh; do
  if [ -x "$script" ]; then
    echo "== $script"
    "$script"
  fi
done
echo "== all tests passed"
