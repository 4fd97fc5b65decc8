#!/usr/bin/env bash
# A quick Tern-only measurement: 1 meta + 3 replica servers (table `bench`, PARTITIONS partitions),
# then one `tern bench` run per workload, one JSON line each on stdout. For comparing changes one
# after the other; bench/run.sh is the full comparison with etcd and the echo service.
#
#   bench/quick.sh                              # write, then c (read-only), 10 s each
#   WORKLOADS=write RATE=3300 bench/quick.sh    # open loop at 3 300 writes/s
#   RUST_LOG=info,tern_server::log_writer=debug WORKLOADS=write bench/quick.sh   # + log writer counters
#
# Environment: WORKLOADS ("write c"), DURATION (10s), PARTITIONS (8), RATE (closed loop if unset),
# WORKER_THREADS (per replica server; default: `tern up`'s share of the cores), CLIENT_THREADS (the
# load generator's, 1).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"
# shellcheck source=../scripts/env.sh
source scripts/env.sh
# shellcheck source=local-cluster.sh
source bench/local-cluster.sh
build_tern
work=$(mktemp -d "${TMPDIR:-/tmp}/tern-quick.XXXXXX")
cluster_up=0
cleanup() {
  # The log writer's counters, if RUST_LOG asked for them.
  grep -h "groups,\|rotated" "$work"/tern/logs/*.log 2>/dev/null | tail -n 12 | cut -c1-250 >&2 || true
  if [ "$cluster_up" -eq 1 ]; then stop_local_cluster "$work/tern"; fi
  rm -rf "$work"
}
trap cleanup EXIT
start_local_cluster "$work/tern" "${PARTITIONS:-8}"
for w in ${WORKLOADS:-write c}; do
  extra=()
  if [ -n "${RATE:-}" ]; then extra=(--rate "$RATE"); fi
  "$tern" bench --output json --worker-threads "${CLIENT_THREADS:-1}" --concurrency 64 --keys 50000 --value-size 100 --warmup 2s \
    --duration "${DURATION:-10s}" --target tern --meta "$meta" --table bench --workload "$w" "${extra[@]}" |
    jq -c --arg w "$w" '{workload: $w, ops_per_sec: (.total.throughput_ops_per_sec | floor),
      p50: .total.latency_ms.p50, p99: .total.latency_ms.p99, p999: .total.latency_ms.p999,
      max: .total.latency_ms.max, errors: .total.errors,
      service: [.ops[] | .service_ms | select(.) | {p50, p99}]}'
done
