#!/usr/bin/env bash
# Benchmarks a local Tern cluster (1 meta server, 3 replica servers, one table of 8 partitions x 3
# replicas), the echo RPC baseline and a local 3-member etcd cluster with the same generator
# (`tern bench`), and prints one markdown table of the results on stdout (progress on stderr).
#
#   bench/run.sh
#   DURATION=5s KEYS=20000 bench/run.sh
#
# Environment: DURATION (per run, default 20s), WARMUP (2s), KEYS (100000), VALUE_SIZE (100),
# CONCURRENCY (64), PARTITIONS (8), WORKER_THREADS (per replica server; default: `tern up`'s share
# of the cores), CLIENT_THREADS (the load generator's, 1), PAIRS (2: alternating Tern/etcd write
# runs, see below), ETCD=0 to skip etcd, KEEP=1 to keep the work directory (data, server logs, one
# JSON report per run), HUGEPAGES=N to have at least N huge pages (2 MiB) reserved during the runs
# (needs root; the previous count comes back at the end): the replica servers put memtables in them
# (`tern replica --memtable-huge-pages`), 768 covers this benchmark. Default 0: the machine's
# setting as it is; the table's heading says how many there were.
#
# Runs: Tern load, write, a, b, c (closed loop); echo write and read; etcd load, write and read;
# then PAIRS more write runs, Tern and etcd alternating with both clusters up (a shared machine's
# speed drifts by tens of percent within minutes: the ratio of neighbouring runs is the fair one,
# printed under the table); then, etcd stopped, Tern write closed loop once more (the maximum)
# and right after it open loop at half that rate (p99 at half load).
# Everything it starts is stopped at the end, also on error or Ctrl-C.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

DURATION=${DURATION:-20s}
WARMUP=${WARMUP:-2s}
KEYS=${KEYS:-100000}
VALUE_SIZE=${VALUE_SIZE:-100}
CONCURRENCY=${CONCURRENCY:-64}
PARTITIONS=${PARTITIONS:-8}
# The load generator's runtime threads: one leaves the servers more of a small machine's cores
# (+5-11 % writes/s in A/B runs on 2 cores); the same for every target.
CLIENT_THREADS=${CLIENT_THREADS:-1}
PAIRS=${PAIRS:-2}
ETCD=${ETCD:-1}
KEEP=${KEEP:-0}
HUGEPAGES=${HUGEPAGES:-0}

command -v jq >/dev/null || {
  echo "run.sh: installing jq" >&2
  if [ "$(id -u)" -eq 0 ]; then apt-get install -y -q jq >&2; else sudo apt-get install -y -q jq >&2; fi
}

# shellcheck source=../scripts/env.sh
source scripts/env.sh
# shellcheck source=local-cluster.sh
source bench/local-cluster.sh
build_tern

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-bench.XXXXXX")
mkdir -p "$work/results"
cluster_up=0
etcd_up=0

hugepages_before=""
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -n "$hugepages_before" ]; then
    echo "== huge pages reserved: back to $hugepages_before" >&2
    echo "$hugepages_before" >/proc/sys/vm/nr_hugepages || true
  fi
  if [ "$cluster_up" -eq 1 ]; then stop_local_cluster "$work/tern"; fi
  if [ "$etcd_up" -eq 1 ]; then
    echo "== stopping etcd" >&2
    bench/etcd-cluster.sh stop "$work/etcd" || true
  fi
  if [ "$KEEP" = 1 ]; then
    echo "== kept $work" >&2
  else
    rm -rf "$work"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

hugepages_now() { awk '/^HugePages_Total:/ {print $2}' /proc/meminfo 2>/dev/null || echo 0; }
if [ "$HUGEPAGES" -gt "$(hugepages_now)" ]; then
  before=$(hugepages_now)
  if ! echo "$HUGEPAGES" 2>/dev/null >/proc/sys/vm/nr_hugepages; then
    echo "run.sh: HUGEPAGES=$HUGEPAGES needs root (to write /proc/sys/vm/nr_hugepages)" >&2
    exit 2
  fi
  hugepages_before=$before
  echo "== huge pages reserved: $(hugepages_now) (was $before)" >&2
fi

# run LABEL ARGS...: one `tern bench` run, its JSON report in results/NN-LABEL.json. A failed
# run is noted and the others go on.
n=0
run() {
  local label=$1
  shift
  n=$((n + 1))
  local out
  out=$(printf '%s/results/%02d-%s' "$work" "$n" "$label")
  echo "== $label: tern bench $*" >&2
  if "$tern" bench --output json --worker-threads "$CLIENT_THREADS" --concurrency "$CONCURRENCY" --keys "$KEYS" --value-size "$VALUE_SIZE" \
    --warmup "$WARMUP" "$@" >"$out.json" 2>"$out.err"; then
    jq -r '"   \(.total.throughput_ops_per_sec | floor) ops/s, p99 \(.total.latency_ms.p99) ms, \(.total.errors) errors"' \
      "$out.json" >&2
  else
    echo "   FAILED: $(tail -n 3 "$out.err")" >&2
    jq -n --arg label "$label" --arg err "$(tail -n 1 "$out.err")" '{failed: $label, error: $err}' >"$out.json"
  fi
}

start_local_cluster "$work/tern" "$PARTITIONS"

tern_args=(--target tern --meta "$meta" --table bench)
run tern-load "${tern_args[@]}" --workload load
run tern-write "${tern_args[@]}" --workload write --duration "$DURATION"
write_results=$(printf '%s/results/%02d-tern-write.json' "$work" "$n")
run tern-a "${tern_args[@]}" --workload a --duration "$DURATION"
run tern-b "${tern_args[@]}" --workload b --duration "$DURATION"
run tern-c "${tern_args[@]}" --workload c --duration "$DURATION"

run echo-write --target echo --workload write --duration "$DURATION"
run echo-read --target echo --workload c --duration "$DURATION"

if [ "$ETCD" = 1 ]; then
  echo "== starting a local etcd cluster in $work/etcd" >&2
  etcd_up=1
  endpoints=$(bench/etcd-cluster.sh start "$work/etcd")
  run etcd-load --target etcd --endpoints "$endpoints" --workload load
  run etcd-write --target etcd --endpoints "$endpoints" --workload write --duration "$DURATION"
  run etcd-read --target etcd --endpoints "$endpoints" --workload c --duration "$DURATION"
  for i in $(seq 1 "$PAIRS"); do
    run "tern-write-pair$i" "${tern_args[@]}" --workload write --duration "$DURATION"
    run "etcd-write-pair$i" --target etcd --endpoints "$endpoints" --workload write --duration "$DURATION"
  done
  # Stopped before Tern's half-load row: its idle members still heartbeat and fsync.
  echo "== stopping etcd" >&2
  bench/etcd-cluster.sh stop "$work/etcd" || true
  etcd_up=0
fi

# Half of the maximum: measured again right before (closed loop, etcd stopped), since the
# machine's speed drifts by tens of percent over the minutes since the first write run.
run tern-write-max "${tern_args[@]}" --workload write --duration "$DURATION"
max_write=$(jq -r '.total.throughput_ops_per_sec // 0 | floor' "$(printf '%s/results/%02d-tern-write-max.json' "$work" "$n")")
if [ "$max_write" -ge 2 ]; then
  run tern-write-half-load "${tern_args[@]}" --workload write --duration "$DURATION" --rate "$((max_write / 2))"
fi

# Problems the servers logged while we ran (the logs go away unless KEEP=1).
for log in "$work"/tern/logs/*.log; do
  count=$(grep -c -E ' (WARN|ERROR) ' "$log" || true)
  if [ "${count:-0}" -gt 0 ]; then
    echo "== $(basename "$log"): $count warnings/errors, e.g.:" >&2
    grep -E ' (WARN|ERROR) ' "$log" | sed -E 's/^[^ ]+ +//' | cut -c1-200 | sort | uniq -c | sort -rn | head -n 5 >&2
  fi
done

# The table: one row per run, plus one per operation kind of mixed workloads, plus the service
# time (from the send, not the scheduled start) of open-loop runs.
cpu=$(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2 | sed 's/^ *//' || true)
echo
echo "tern bench, $(date -u +%Y-%m-%d), $(nproc) cores ($cpu), keys $KEYS, values $VALUE_SIZE B," \
  "concurrency $CONCURRENCY, $DURATION per run after $WARMUP warm-up; Tern: 1 meta, 3 replica servers," \
  "$PARTITIONS partitions x 3 replicas, $(hugepages_now) huge pages reserved; etcd $(etcd --version 2>/dev/null | awk '/etcd Version/ {print $3}'): 3 members; all on this machine."
echo
echo "| target | workload | loop | op | ops/s | p50 ms | p99 ms | p99.9 ms | max ms | errors |"
echo "|---|---|---|---|---:|---:|---:|---:|---:|---:|"
for f in "$work"/results/*.json; do
  jq -r '
    def ms: . * 100 | round / 100;
    def errs: if .errors == 0 then "0" else "\(.errors) (\(.errors_by_code | to_entries | map("\(.key) \(.value)") | join(", ")))" end;
    def row($t; $w; $l; $op; $s; $lat):
      "| \($t) | \($w) | \($l) | \($op) | \($s.throughput_ops_per_sec | floor) | \($lat.p50 | ms) | \($lat.p99 | ms) | \($lat.p999 | ms) | \($lat.max | ms) | \($s | errs) |";
    if .failed then "| \(.failed) | | | | failed: \(.error) | | | | | |"
    else
      (if .mode == "open" then "open @ \(.rate_ops_per_sec | floor)/s" else "closed" end) as $loop
      | (.ops | keys) as $kinds
      | (if ($kinds | length) == 1 then row(.target; .workload; $loop; $kinds[0]; .total; .total.latency_ms)
         else row(.target; .workload; $loop; "all"; .total; .total.latency_ms),
              (.ops | to_entries[] as $e | row(""; ""; ""; $e.key; $e.value; $e.value.latency_ms))
         end),
        # Open loop: latency above counts from the scheduled start; this row from the send.
        (.ops | to_entries[] | select(.value.service_ms) as $e
         | row(""; ""; ""; "\($e.key), service time"; $e.value; $e.value.service_ms))
    end' "$f"
done

# Writes against etcd, from neighbouring runs: the first closed-loop rows (minutes apart) and each
# alternating pair.
ratio_line() {
  jq -rs --arg what "$1" 'if any(.[]; .failed) then "| \($what) | failed | | |" else
    (.[0].total.throughput_ops_per_sec | floor) as $t | (.[1].total.throughput_ops_per_sec | floor) as $e
    | "| \($what) | \($t) | \($e) | \(if $e > 0 then ($t / $e * 100 | round / 100 | tostring) + "×" else "-" end) |" end' "$2" "$3"
}
if [ "$ETCD" = 1 ]; then
  echo
  echo "| writes | tern ops/s | etcd ops/s | ratio |"
  echo "|---|---:|---:|---:|"
  ratio_line "first runs" "$write_results" "$(ls "$work"/results/*-etcd-write.json)"
  for i in $(seq 1 "$PAIRS"); do
    ratio_line "pair $i" "$(ls "$work"/results/*-tern-write-pair"$i".json)" "$(ls "$work"/results/*-etcd-write-pair"$i".json)"
  done
fi
