#!/usr/bin/env bash
# Build RocksDB's static library once and keep it outside the clone.
#
# Why: librocksdb-sys compiles ~350 C++ files (16-21 min on 2 cores) and cargo
# redoes it whenever the feature set of crates shared with bindgen changes
# (e.g. `cargo test` after `cargo build`). Linking a prebuilt `librocksdb.a`
# through ROCKSDB_LIB_DIR makes every cargo command skip that build.
# See docs/build.md.
#
# Usage: scripts/rocksdb-cache.sh        prints the cache directory (builds it if missing)
# The cache key is the librocksdb-sys version in Cargo.lock plus the feature set
# below; both must match what cluster/rocks links, or symbols go missing.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
# Keep in sync with the `rocksdb` features in the root Cargo.toml.
features='"snappy", "lz4", "static", "bindgen-runtime"'
feature_key=snappy-lz4

lock_version() {
  [ -f "$repo/Cargo.lock" ] &&
    awk '/^name = "librocksdb-sys"$/ {getline; gsub(/version = |"/, ""); print; exit}' "$repo/Cargo.lock"
}
version=$(lock_version || true)
if [ -z "$version" ]; then
  # A lockfile that does not list it yet (a dependency was just added): let cargo resolve.
  (cd "$repo" && cargo metadata --format-version 1 >/dev/null)
  version=$(lock_version || true)
fi
if [ -z "$version" ]; then
  echo "rocksdb-cache: librocksdb-sys not found in $repo/Cargo.lock" >&2
  exit 1
fi
cache_root=${TERN_CACHE_DIR:-$HOME/.cache/tern}
dir="$cache_root/rocksdb-$version-$feature_key"

if [ -f "$dir/librocksdb.a" ] && [ -f "$dir/libsnappy.a" ]; then
  echo "$dir"
  exit 0
fi

echo "rocksdb-cache: building librocksdb-sys $version (release, one time: 20-30 min on 2 cores; later builds reuse it) into $dir" >&2
work="$cache_root/rocksdb-build-$version-$feature_key"
mkdir -p "$work/src"
cat > "$work/Cargo.toml" <<TOML
[package]
name = "tern-rocksdb-prebuild"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
librocksdb-sys = { version = "=$version", default-features = false, features = [$features] }

[profile.release]
debug = false
TOML
echo 'fn main() {}' > "$work/src/main.rs"
# Its own target directory: the caller's CARGO_TARGET_DIR (scripts/env.sh exports one) would put
# the output where the lookup below does not search.
(cd "$work" && CARGO_TARGET_DIR="$work/target" cargo build --release --quiet 1>&2)

out=$(ls -d "$work"/target/release/build/librocksdb-sys-*/out 2>/dev/null | while read -r d; do
  [ -f "$d/librocksdb.a" ] && echo "$d"; done | head -n 1)
if [ -z "$out" ]; then
  echo "rocksdb-cache: build finished but librocksdb.a was not found under $work/target" >&2
  exit 1
fi
tmp="$dir.tmp.$$"
mkdir -p "$tmp"
cp "$out/librocksdb.a" "$out/libsnappy.a" "$tmp/"
rm -rf "$dir"
mv "$tmp" "$dir"   # atomic publish: a half-copied cache is never seen
rm -rf "$work/target"
echo "$dir"
