#!/usr/bin/env bash
# Installs the programs the test suite runs besides `tern`, when missing:
# - redis-server, redis-cli and redis-benchmark (Debian's redis-server and redis-tools), which the
#   Redis gateway's end-to-end test (e2e/tests/resp.rs) and bench/resp.sh compare against.
# Needs root or sudo. Called by scripts/test; safe to run again (does nothing when all is there).
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "install-test-deps: need root to run: $*" >&2
    return 1
  fi
}

# command -> Debian package
need=()
for pair in redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)

echo "install-test-deps: installing ${need[*]}" >&2
apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@" >&2; }
apt install -y -q --no-install-recommends "${need[@]}" ||
  { apt update -q && apt install -y -q --no-install-recommends "${need[@]}"; }

for c in redis-server redis-cli redis-benchmark; do
  command -v "$c" >/dev/null || { echo "install-test-deps: $c is still missing" >&2; exit 1; }
done
