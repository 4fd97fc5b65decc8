#!/usr/bin/env bash
# Installs the programs the test suite runs besides `tern`, when missing:
# - redis-server, redis-cli and redis-benchmark (Debian's redis-server and redis-tools), which the
#   Redis gateway's end-to-end test (e2e/tests/resp.rs) and bench/resp.sh compare against;
# - s3s-fs, an S3-compatible server (cargo install, pinned, into $TERN_CACHE_DIR/tools/bin outside
#   the clone), and moto's S3 server (PyPI, pinned), which tern-backup's conformance suite runs
#   against (backup/tests/it/s3_servers.rs; docs/backup.md);
# - the AWS CLI (PyPI awscli), which a backup test uses to list and fetch what Tern wrote;
# - kubernetes-validate (PyPI, pinned), which checks `tern export k8s` against the Kubernetes
#   API schemas it bundles, offline (topology/tests/it/export.rs).
# Needs root or sudo for the Debian packages. Called by scripts/test; safe to run again (does
# nothing when all is there).
set -euo pipefail

S3S_FS_VERSION=0.14.1 # 0.15 and later need a newer Rust than the workspace's rust-version
MOTO_VERSION=5.2.5 # 5.2.1 answered CompleteMultipartUpload with the wrong XML root (moto issue 10055)
AWSCLI_VERSION=1.45.11
KUBERNETES_VALIDATE_VERSION=1.37.0 # bundles the schemas of Kubernetes 1.25 to 1.37

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "install-test-deps: need root to run: $*" >&2
    return 1
  fi
}

# --- Debian packages: command -> package
need=()
for pair in redis-server:redis-server redis-cli:redis-tools redis-benchmark:redis-tools; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
  echo "install-test-deps: installing ${need[*]}" >&2
  apt() { as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@" >&2; }
  apt install -y -q --no-install-recommends "${need[@]}" ||
    { apt update -q && apt install -y -q --no-install-recommends "${need[@]}"; }
  for c in redis-server redis-cli redis-benchmark; do
    command -v "$c" >/dev/null || { echo "install-test-deps: $c is still missing" >&2; exit 1; }
  done
fi

# --- s3s-fs, built once per machine into the cache (the tests find it there).
cache=${TERN_CACHE_DIR:-$HOME/.cache/tern}
s3s_fs=$cache/tools/bin/s3s-fs
if [ "$("$s3s_fs" --version 2>/dev/null)" != "s3s-fs $S3S_FS_VERSION" ]; then
  echo "install-test-deps: building s3s-fs $S3S_FS_VERSION into $cache/tools" >&2
  CARGO_TARGET_DIR=$cache/target-tools cargo install s3s-fs --version "$S3S_FS_VERSION" \
    --features binary --locked --force --root "$cache/tools" >&2
  [ "$("$s3s_fs" --version 2>/dev/null)" = "s3s-fs $S3S_FS_VERSION" ] ||
    { echo "install-test-deps: s3s-fs is still missing at $s3s_fs" >&2; exit 1; }
fi

# --- moto's S3 server and the AWS CLI, from PyPI into the current Python.
pip_install() {
  echo "install-test-deps: installing $*" >&2
  python3 -m pip install -q --disable-pip-version-check "$@" >&2
  if command -v pyenv >/dev/null; then pyenv rehash; fi
}
python3 -c "import moto, moto.server, flask; assert moto.__version__ == '$MOTO_VERSION'" 2>/dev/null &&
  command -v moto_server >/dev/null || pip_install "moto[server]==$MOTO_VERSION"
command -v moto_server >/dev/null ||
  { echo "install-test-deps: moto_server is still missing" >&2; exit 1; }
command -v aws >/dev/null || pip_install "awscli==$AWSCLI_VERSION"
command -v aws >/dev/null || { echo "install-test-deps: aws is still missing" >&2; exit 1; }
[ "$(kubernetes-validate --version 2>/dev/null)" = "$KUBERNETES_VALIDATE_VERSION" ] ||
  pip_install "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
command -v kubernetes-validate >/dev/null ||
  { echo "install-test-deps: kubernetes-validate is still missing" >&2; exit 1; }
