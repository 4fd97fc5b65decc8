#!/usr/bin/env bash
# Checks the dependency rules of docs/architecture.md: I/O-free cores and seam crates must not
# reach tokio's runtime, tonic, RocksDB or the AWS SDK, even transitively.
set -euo pipefail
cd "$(dirname "$0")/.."

# crate: forbidden crates in its normal (non-dev) dependency tree
rules=(
  "tern-core:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-storage:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-replica:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-confman:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-drlease:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-duplication:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-host:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-sim:tokio tonic rocksdb librocksdb-sys aws-sdk-s3 hyper"
  "tern-proto:rocksdb librocksdb-sys aws-sdk-s3"
  "tern-client:rocksdb librocksdb-sys"
  "tern-meta-proxy:rocksdb librocksdb-sys"
  "tern-topology:rocksdb librocksdb-sys"
  "tern-runbook:rocksdb librocksdb-sys"
  "tern-backup:rocksdb librocksdb-sys tern-rocks tern-server tern-meta tern-replica"
  # Without its `s3` feature, tern-backup (trait, in-memory and local stores, backup model)
  # has no AWS SDK: crates that only need the seam use it so.
  "tern-backup --no-default-features:aws-sdk-s3 aws-config rocksdb librocksdb-sys"
  # The restore tool reads checkpoints with tern-rocks and talks to clusters only through
  # tern-client: no server or meta crate.
  "tern-restore:tern-server tern-meta tern-replica tern-host"
)
fail=0
for rule in "${rules[@]}"; do
  crate=${rule%%:*}
  # shellcheck disable=SC2086 # "crate --flags" splits into the package and its flags
  tree=$(cargo tree --locked -q -p $crate -e normal --prefix none | awk '{print $1}' | sort -u)
  for banned in ${rule#*:}; do
    if grep -qx "$banned" <<<"$tree"; then
      echo "dependency rule broken: $crate depends on $banned (cargo tree -p $crate -i $banned)" >&2
      fail=1
    fi
  done
done
[ "$fail" -eq 0 ] && echo "dependency rules: ok"
exit "$fail"
