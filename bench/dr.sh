#!/usr/bin/env bash
# DR runbook figures (issue #27): on the local two-DC deployment of `tern up` (table `bench`
# active in dc1, standby in dc2, a proxy that is the DR voter), load KEYS records of 100 bytes
# through the proxy, then
#   - `tern dr verify` of the two copies (keys/s),
#   - `tern dr switchover` to dc2 and back while writers keep writing through the proxy at
#     RATE ops/s (client writes refused/waiting between stop and promotion, as the command
#     measures it; and the writes' p99 latency over the run),
#   - `tern dr drill --from dc1 --to dc2` (its own scratch table and writers: switchover
#     unavailability as the writers saw it, zero loss, forced-failover RTO and RPO).
# Prints a markdown table; KEEP=1 keeps the work directory.
#
#   bench/dr.sh                    # defaults: KEYS=200000 PARTITIONS=8 RATE=2000
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
KEYS=${KEYS:-200000}
PARTITIONS=${PARTITIONS:-8}
RATE=${RATE:-2000}

source "$repo/scripts/env.sh"
# shellcheck source=local-cluster.sh
source "$repo/bench/local-cluster.sh"
cd "$repo"
build_tern
command -v jq >/dev/null || { echo "dr.sh needs jq (apt-get install jq)" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-dr-XXXXXX")
up_dir="$work/up"
bench_pid=""
cleanup() {
  [ -n "$bench_pid" ] && kill "$bench_pid" 2>/dev/null || true
  "$tern" down --dir "$up_dir" >/dev/null 2>&1 || true
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT

"$tern" up --dir "$up_dir" --clusters 2 --metas 1 --replicas 3 --table bench \
  --partitions "$PARTITIONS" --detach >&2
proxy=$(jq -r '.proxy' "$up_dir/cluster.json")

"$tern" bench --meta "$proxy" --table bench --workload load --keys "$KEYS" --value-size 100 \
  --concurrency 64 --output json >"$work/load.json" 2>"$work/load.err"
echo "loaded $KEYS records through the proxy" >&2

# The copies converge, then verify times a full comparison.
for _ in $(seq 1 60); do
  "$tern" dr verify --dir "$up_dir" --table bench --between dc1 dc2 --output json \
    >"$work/verify.json" 2>"$work/verify.err" && break
  sleep 1
done
jq -e '.differing_keys == 0' "$work/verify.json" >/dev/null

# Writers through the proxy during both switchovers.
"$tern" bench --meta "$proxy" --table bench --workload write --keys "$KEYS" --value-size 100 \
  --concurrency 32 --rate "$RATE" --duration 40s --output json >"$work/writes.json" 2>"$work/writes.err" &
bench_pid=$!
sleep 5
"$tern" dr switchover --dir "$up_dir" --table bench --to dc2 --output json >"$work/to-dc2.json" 2>"$work/to-dc2.err"
sleep 5
"$tern" dr switchover --dir "$up_dir" --table bench --to dc1 --output json >"$work/to-dc1.json" 2>"$work/to-dc1.err"
wait "$bench_pid"
bench_pid=""

"$tern" dr drill --dir "$up_dir" --from dc1 --to dc2 --output json >"$work/drill.json" 2>"$work/drill.err"

echo
echo "| figure | value |"
echo "|---|---|"
jq -r '"| dr verify, \(.left_records) records a side | \(.took_ms) ms, \(.keys_per_sec) keys/s |"' "$work/verify.json"
jq -r '"| switchover dc1 -> dc2: writes refused/waiting | \(.write_unavailable_ms) ms |"' "$work/to-dc2.json"
jq -r '"| switchover dc2 -> dc1: writes refused/waiting | \(.write_unavailable_ms) ms |"' "$work/to-dc1.json"
jq -r '"| writes through the proxy at \(.total.throughput_ops_per_sec | floor) ops/s across both: p99 / max | \(.total.latency_ms.p99) / \(.total.latency_ms.max) ms, \(.total.errors // 0) errors |"' "$work/writes.json"
jq -r '.switchovers[] | "| drill: switchover \(.from) -> \(.to), writes unavailable as the writers saw it | \(.write_unavailable_ms) ms |"' "$work/drill.json"
jq -r '"| drill: zero-loss check after both switchovers | \(.zero_loss.keys_lost) of \(.zero_loss.keys_checked) keys lost |"' "$work/drill.json"
jq -r '"| drill: forced failover RTO (loss to first acknowledged write) | \(.failover_rto_ms) ms |"' "$work/drill.json"
jq -r '"| drill: RPO (acknowledged writes the new active lacks) | \(.loss.writes_lost) writes over \(.loss.lost_span_ms) ms, \(.loss.outside_report) outside the loss report |"' "$work/drill.json"
