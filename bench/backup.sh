#!/usr/bin/env bash
# Backup figures (issue #25) on one local cluster of `tern up` (1 meta, 3 replica servers, table
# `bench`) and the local S3-compatible server `tern up` starts (s3s-fs; install it with
# scripts/install-test-deps.sh). Loads KEYS records of VALUE bytes, then measures, all in this run
# against the same server:
#   1. `tern backup now` (full, into a fresh prefix, after a first backup flushed the memtables)
#      against raw aws-sdk-s3 PutObject of the same objects (`tern-s3-raw put`, the same number
#      of requests in flight);
#   2. `tern backup restore` (into a new table) against raw GetObject of the same objects
#      (`tern-s3-raw get`);
#   3. foreground writes (`tern bench --workload write`, closed loop) for DURATION alone, then for
#      DURATION while full backups run back to back at the default limit (none), then (with
#      FOREGROUND_LIMIT_MBPS set) for DURATION while they run at that limit;
#   4. `--limit-mbps LIMIT_MBPS --concurrency 1`: the achieved upload rate against the limit.
# Prints a markdown table; KEEP=1 keeps the work directory.
#
#   bench/backup.sh                 # defaults: KEYS=300000 VALUE=1000 PARTITIONS=8 DURATION=20
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-300000}
VALUE=${VALUE:-1000}
PARTITIONS=${PARTITIONS:-8}
DURATION=${DURATION:-20}
LIMIT_MBPS=${LIMIT_MBPS:-200}
CONCURRENCY=4 # tern backup now's default --concurrency, used by both sides

source "$repo/scripts/env.sh"
# shellcheck source=local-cluster.sh
source "$repo/bench/local-cluster.sh"
cd "$repo"
command -v jq >/dev/null || { echo "backup.sh needs jq (apt-get install jq)" >&2; exit 1; }
if [ "${NO_BUILD:-0}" = 1 ]; then # the release binaries already built
  tern=$CARGO_TARGET_DIR/release/tern
else
  build_tern
fi
# One invocation with the root package, so features unify as for `tern` and nothing rebuilds.
[ "${NO_BUILD:-0}" = 1 ] || cargo build --release -p tern -p tern-bench --bin tern --bin tern-s3-raw >&2
raw=$CARGO_TARGET_DIR/release/tern-s3-raw

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-backup-bench-XXXXXX")
writer_pid=""
cleanup() {
  [ -n "$writer_pid" ] && kill "$writer_pid" 2>/dev/null || true
  if [ "${cluster_up:-0}" = 1 ]; then stop_local_cluster "$work/up"; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

start_local_cluster "$work/up" "$PARTITIONS"
if [ ! -f "$work/up/backup.env" ]; then
  echo "backup.sh: tern up found no s3s-fs, so there is no S3 server to measure against;" \
    "run scripts/install-test-deps.sh first" >&2
  exit 1
fi
set -a
# shellcheck disable=SC1091
. "$work/up/backup.env"
set +a
base=$TERN_BACKUP_TARGET
endpoint=$TERN_BACKUP_ENDPOINT

echo "== loading $KEYS records of $VALUE bytes" >&2
"$tern" bench --meta "$meta" --table bench --workload load --keys "$KEYS" --value-size "$VALUE" \
  --concurrency 64 --output json >"$work/load.json" 2>"$work/load.err"

backup() { # PREFIX [extra flags…] → JSON summary on stdout
  local prefix=$1
  shift
  "$tern" backup now --meta "$meta" --table bench --target "$base/$prefix" --no-progress \
    --output json "$@" 2>>"$work/backup.err"
}

echo "== 1. full backup, then raw GET and PUT of the same objects" >&2
# A first backup flushes the memtables (its checkpoints do); the measured one, into a fresh
# prefix, uploads everything again with only the upload to do.
backup warm --concurrency "$CONCURRENCY" >"$work/warm.json"
backup full --concurrency "$CONCURRENCY" >"$work/full.json"
id=$(jq -r .backup_id "$work/full.json")
"$raw" get --url "$base/full/files/" --endpoint "$endpoint" --dir "$work/objects" \
  --concurrency "$CONCURRENCY" >"$work/raw-get.json"
"$raw" put --url "$base/raw/" --endpoint "$endpoint" --dir "$work/objects" \
  --concurrency "$CONCURRENCY" >"$work/raw-put.json"

echo "== 2. restore into a new table" >&2
"$tern" backup restore "$id" --meta "$meta" --target "$base/full" --table restored \
  --partitions "$PARTITIONS" --output json >"$work/restore.json" 2>"$work/restore.err"

echo "== 3. foreground writes without and with a backup running" >&2
write_bench() {
  "$tern" bench --meta "$meta" --table bench --workload write --keys "$KEYS" --value-size "$VALUE" \
    --concurrency 32 --duration "${DURATION}s" --output json
}
write_bench >"$work/writes-alone.json" 2>"$work/writes-alone.err"
write_bench >"$work/writes-backup.json" 2>"$work/writes-backup.err" &
writer_pid=$!
backups_during=0
while kill -0 "$writer_pid" 2>/dev/null; do
  # A fresh prefix each time: every backup uploads the whole table, none is incremental.
  backup "during-$backups_during" >/dev/null
  backups_during=$((backups_during + 1))
done
wait "$writer_pid"
writer_pid=""
if [ -n "${FOREGROUND_LIMIT_MBPS:-}" ]; then
  write_bench >"$work/writes-limited.json" 2>"$work/writes-limited.err" &
  writer_pid=$!
  limited_during=0
  while kill -0 "$writer_pid" 2>/dev/null; do
    backup "limited-during-$limited_during" --limit-mbps "$FOREGROUND_LIMIT_MBPS" >/dev/null
    limited_during=$((limited_during + 1))
  done
  wait "$writer_pid"
  writer_pid=""
fi

echo "== 4. the bandwidth limit ($LIMIT_MBPS Mbit/s, one partition at a time)" >&2
backup limited --concurrency 1 --limit-mbps "$LIMIT_MBPS" >"$work/limited.json"

mbs() { jq -r "$1" "$2"; }
tern_put=$(jq -r '.bytes_uploaded / 1e6 / (.duration_ms / 1e3) * 10 | floor / 10' "$work/full.json")
raw_put=$(mbs .mb_per_sec "$work/raw-put.json")
raw_get=$(mbs .mb_per_sec "$work/raw-get.json")
tern_restore=$(jq -r '.bytes_downloaded / 1e6 / (.elapsed_ms / 1e3) * 10 | floor / 10' "$work/restore.json")
loaded=$(jq -r '.total.throughput_ops_per_sec * '"$VALUE"' / 1e6 * 10 | floor / 10' "$work/load.json")
alone=$(jq -r '.total.throughput_ops_per_sec | floor' "$work/writes-alone.json")
during=$(jq -r '.total.throughput_ops_per_sec | floor' "$work/writes-backup.json")
limited=$(jq -r '.bytes_uploaded * 8 / 1e6 / (.duration_ms / 1e3) * 10 | floor / 10' "$work/limited.json")
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo
echo "| figure | Tern | raw aws-sdk-s3 / baseline | ratio |"
echo "|---|---|---|---|"
echo "| backup upload, $(jq -r .files_uploaded "$work/full.json") files, $(jq -r '.bytes_uploaded / 1e6 | floor' "$work/full.json") MB (memtables already flushed) | $tern_put MB/s | PUT $raw_put MB/s | $(ratio "$tern_put" "$raw_put") |"
echo "| restore, $(jq -r .records "$work/restore.json") records into $PARTITIONS partitions | $tern_restore MB/s | GET $raw_get MB/s | $(ratio "$tern_restore" "$raw_get") |"
echo "| restore context: the load through the client ($KEYS records) | $loaded MB/s of values | | |"
echo "| foreground writes, ${DURATION} s, 32 writers | $during ops/s during $backups_during full backups | $alone ops/s without | $(ratio "$during" "$alone") |"
if [ -n "${FOREGROUND_LIMIT_MBPS:-}" ]; then
  at_limit=$(jq -r '.total.throughput_ops_per_sec | floor' "$work/writes-limited.json")
  echo "| foreground writes, ${DURATION} s, 32 writers | $at_limit ops/s during $limited_during full backups at --limit-mbps $FOREGROUND_LIMIT_MBPS | $alone ops/s without | $(ratio "$at_limit" "$alone") |"
fi
echo "| --limit-mbps $LIMIT_MBPS --concurrency 1 | $limited Mbit/s | limit $LIMIT_MBPS Mbit/s | $(ratio "$limited" "$LIMIT_MBPS") |"
