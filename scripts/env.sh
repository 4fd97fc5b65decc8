# shellcheck shell=bash
# Sourced by every project script before running cargo:  source scripts/env.sh
#
# - installs the system packages the build needs (libclang for RocksDB's bindgen) if missing;
# - builds RocksDB's static library once, outside the clone (scripts/rocksdb-cache.sh), and
#   points librocksdb-sys at it so no cargo command ever recompiles RocksDB's C++;
# - keeps cargo's target directory outside the clone (default ~/.cache/tern/target), so a
#   fresh clone (CI) reuses everything already compiled.
# See docs/build.md.

_tern_repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

_tern_as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "tern: need root to run: $*" >&2; return 1; fi
}

# Installs Debian packages that are missing: _tern_apt_install PACKAGE...
_tern_apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "tern: installing ${missing[*]}" >&2
  _tern_as_root apt-get install -y -q "${missing[@]}" >&2 ||
    { _tern_as_root apt-get update -q >&2 && _tern_as_root apt-get install -y -q "${missing[@]}" >&2; }
}

_tern_apt_install libclang-dev

export TERN_CACHE_DIR=${TERN_CACHE_DIR:-$HOME/.cache/tern}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$TERN_CACHE_DIR/target}
_tern_rocks=$("$_tern_repo/scripts/rocksdb-cache.sh") || return 1
export ROCKSDB_LIB_DIR=$_tern_rocks ROCKSDB_STATIC=1 SNAPPY_LIB_DIR=$_tern_rocks SNAPPY_STATIC=1
unset _tern_rocks
