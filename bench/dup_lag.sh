#!/usr/bin/env bash
# Duplication lag benchmark (issue #5): two local clusters with a two-way link on table `bench`
# (`tern up --clusters 2`), 100-byte writes to dc1 at 70% of the maximum write throughput
# measured first (with the link on), and a probe that times how long after acknowledgement a
# write is readable in dc2. Then the same at the same rate with every duplication batch delayed
# by DELAY_MS (imitating a distant datacenter). Prints a markdown table; the raw JSON reports
# stay in the work directory (KEEP=1 keeps it).
#
#   bench/dup_lag.sh                      # defaults: DURATION=20s PARTITIONS=8 DELAY_MS=50
#   DURATION=60s DELAY_MS=100 bench/dup_lag.sh
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-3s}
PARTITIONS=${PARTITIONS:-8}
DELAY_MS=${DELAY_MS:-50}
CONCURRENCY=${CONCURRENCY:-64}
LOAD=${LOAD:-0.7}

source "$repo/scripts/env.sh"
(cd "$repo" && cargo build --release --locked --quiet -p tern)
tern="$CARGO_TARGET_DIR/release/tern"
command -v jq >/dev/null || { echo "dup_lag.sh needs jq (apt-get install jq)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-dup-lag-XXXXXX")
up_dir=""
cleanup() {
  if [ -n "$up_dir" ]; then "$tern" down --dir "$up_dir" >/dev/null 2>&1 || true; sleep 1; fi
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

# Starts two linked clusters in $1; sets m1 and m2 (their meta addresses).
start() {
  up_dir=$1
  "$tern" up --dir "$up_dir" --clusters 2 --metas 1 --replicas 3 --table bench \
    --partitions "$PARTITIONS" --detach >&2
  m1=$(jq -r '.clusters[0].metas | [.[]] | join(",")' "$up_dir/cluster.json")
  m2=$(jq -r '.clusters[1].metas | [.[]] | join(",")' "$up_dir/cluster.json")
  # Every partition of both links must have started shipping before measuring.
  for _ in $(seq 1 120); do
    started=$( { "$tern" dup status --meta "$m1" --output json; "$tern" dup status --meta "$m2" --output json; } \
      | jq -s '[.[].links[].partitions[] | select(.started)] | length')
    [ "$started" -ge $((2 * PARTITIONS)) ] && return 0
    sleep 0.5
  done
  echo "the links did not start on every partition" >&2
  exit 1
}

stop() {
  "$tern" down --dir "$up_dir" >&2
  sleep 2
  up_dir=""
}

bench() { # name, extra args...
  local name=$1
  shift
  "$tern" bench --meta "$m1" --table bench --workload write --value-size 100 \
    --concurrency "$CONCURRENCY" --duration "$DURATION" --warmup "$WARMUP" --output json "$@" \
    >"$work/$name.json" 2>"$work/$name.err"
}

start "$work/plain"
bench max
max=$(jq '.total.throughput_ops_per_sec' "$work/max.json")
rate=$(jq -n "$max * $LOAD | floor")
echo "max write throughput with the link on: $max ops/s; measuring lag at $rate ops/s" >&2
bench lag --rate "$rate" --lag-peer-meta "$m2"
stop

TERN_DUP_INJECTED_DELAY_MS=$DELAY_MS start "$work/delayed"
bench delayed --rate "$rate" --lag-peer-meta "$m2"
stop

row() { # label, file
  jq -r --arg l "$1" '"| \($l) | \(.total.throughput_ops_per_sec | floor) | \(.total.latency_ms.p99) | \(.dup_lag.probes) | \(.dup_lag.missing) | \(.dup_lag.p50_ms) | \(.dup_lag.p99_ms) | \(.dup_lag.max_ms) |"' "$2"
}
echo
echo "Two clusters x (1 meta + 3 replica servers) on this machine, table \`bench\` ($PARTITIONS partitions, two-way link), 100-byte writes to dc1, $CONCURRENCY workers, $DURATION measured; max write throughput with the link on: $(printf '%.0f' "$max") ops/s"
echo
echo "| run | writes/s | write p99 ms | lag probes | missing | lag p50 ms | lag p99 ms | lag max ms |"
echo "|---|---|---|---|---|---|---|---|"
row "${LOAD} x max, loopback" "$work/lag.json"
row "${LOAD} x max, +${DELAY_MS} ms per batch" "$work/delayed.json"
