# Shared helpers for the bench scripts (sourced, not run): installing the
# tools they need on a fresh machine. Callers define `say` first.

apt_updated=0

# apt_install PKG...: as root, `apt-get update` once per script, then install.
apt_install() {
  [ "$(id -u)" -eq 0 ] || return 1
  if [ "$apt_updated" = 0 ]; then
    DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -qq >&2 || return 1
    apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive timeout 600 apt-get install -y -qq "$@" >&2
}

# find_oha: prints the path of oha, installing it with cargo when missing
# (waiting for an install already under way); prints nothing if it cannot.
find_oha() {
  local oha
  oha="$(command -v oha || echo "$HOME/.cargo/bin/oha")"
  if [ ! -x "$oha" ] && pgrep -f 'cargo install.*oha' >/dev/null 2>&1; then
    say "oha is being installed by another process: waiting for it (at most 20 min)"
    for _ in $(seq 1 240); do
      [ -x "$oha" ] && break
      pgrep -f 'cargo install.*oha' >/dev/null 2>&1 || break
      sleep 5
    done
  fi
  if [ ! -x "$oha" ]; then
    say "installing oha (cargo install oha --locked; takes minutes)"
    timeout 1800 cargo install oha --locked >&2 || say "cannot install oha"
  fi
  if [ -x "$oha" ]; then echo "$oha"; fi
}
