#!/usr/bin/env bash
# The Redis gateway against redis-server (issue #6, part 5): a local Tern cluster (1 meta server,
# 3 replica servers, table `bench` of PARTITIONS partitions x 3 replicas, `tern up --clusters 1`),
# `tern proxy --resp-listen` in front of it, and a redis-server (persistence off), all on this
# machine; `redis-benchmark -t set,get -n N -c 50` without pipelining and with -P 16 against both.
# Prints a markdown table and the Tern/Redis ratios on stdout (progress on stderr).
#
#   bench/resp.sh
#   N=50000 RANDOM_KEYS=100000 bench/resp.sh
#
# Environment: N (requests per run, default 200000), CLIENTS (50), PIPELINES ("1 16"),
# PARTITIONS (8), RANDOM_KEYS (0: redis-benchmark's one key per test, as its default; n > 0:
# -r n, keys spread over n), KEEP=1 keeps the work directory (logs, CSV of every run).
# Needs redis-server and redis-benchmark (scripts/install-test-deps.sh) and jq.
# Everything it starts is stopped at the end, also on error or Ctrl-C.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

N=${N:-200000}
CLIENTS=${CLIENTS:-50}
PIPELINES=${PIPELINES:-"1 16"}
PARTITIONS=${PARTITIONS:-8}
RANDOM_KEYS=${RANDOM_KEYS:-0}
KEEP=${KEEP:-0}

scripts/install-test-deps.sh
command -v jq >/dev/null || { echo "resp.sh needs jq (apt-get install jq)" >&2; exit 1; }
# shellcheck source=../scripts/env.sh
source scripts/env.sh
# shellcheck source=local-cluster.sh
source bench/local-cluster.sh
# shellcheck source=free-port.sh
source bench/free-port.sh
build_tern

work=$(mktemp -d "${TMPDIR:-/tmp}/tern-resp-bench.XXXXXX")
cluster_up=0
proxy_pid=""
redis_pid=""

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null && wait "$proxy_pid" 2>/dev/null || true
  [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null && wait "$redis_pid" 2>/dev/null || true
  if [ "$cluster_up" -eq 1 ]; then stop_local_cluster "$work/tern"; fi
  if [ "$KEEP" = 1 ]; then echo "== kept $work" >&2; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_ping PORT WHAT: until redis-cli gets PONG (30 s).
wait_ping() {
  for _ in $(seq 1 300); do
    [ "$(redis-cli -h 127.0.0.1 -p "$1" PING 2>/dev/null)" = PONG ] && return 0
    sleep 0.1
  done
  echo "resp.sh: $2 does not answer PING on port $1" >&2
  KEEP=1
  exit 1
}

start_local_cluster "$work/tern" "$PARTITIONS"

proxy_port=$(free_port)
tern_port=$(free_port)
redis_port=$(free_port)
echo "== starting tern proxy with the Redis gateway on port $tern_port" >&2
"$tern" proxy --listen "127.0.0.1:$proxy_port" --cluster "local=$meta" \
  --resp-listen "127.0.0.1:$tern_port" --resp-table bench >"$work/proxy.log" 2>&1 &
proxy_pid=$!
wait_ping "$tern_port" "the gateway"
for _ in $(seq 1 300); do
  [ "$(redis-cli -h 127.0.0.1 -p "$tern_port" SET warm 1 2>/dev/null)" = OK ] && break
  sleep 0.1
done

echo "== starting redis-server $(redis-server --version | awk '{print $3}') on port $redis_port" >&2
mkdir -p "$work/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no --daemonize no \
  --dir "$work/redis" --logfile "$work/redis/redis.log" &
redis_pid=$!
wait_ping "$redis_port" "redis-server"

random_args=()
[ "$RANDOM_KEYS" -gt 0 ] && random_args=(-r "$RANDOM_KEYS")

# bench TARGET PORT P: one redis-benchmark run, its CSV in $work/TARGET-P.csv.
bench() {
  echo "== $1, -P $3: redis-benchmark -t set,get -n $N -c $CLIENTS -P $3 ${random_args[*]}" >&2
  redis-benchmark -h 127.0.0.1 -p "$2" -t set,get -n "$N" -c "$CLIENTS" -P "$3" "${random_args[@]}" --csv \
    >"$work/$1-$3.csv" 2>"$work/$1-$3.err"
  grep -v '^"test"' "$work/$1-$3.csv" | tr -d '"' | awk -F, '{printf "   %s %d ops/s, p50 %s ms, p99 %s ms\n", $1, $2, $5, $7}' >&2
}

for p in $PIPELINES; do
  bench redis "$redis_port" "$p"
  bench tern "$tern_port" "$p"
done

# field TARGET P TEST COLUMN (2 rps, 5 p50, 7 p99)
field() { grep "^\"$3\"" "$work/$1-$2.csv" | tr -d '"' | cut -d, -f"$4"; }

echo
echo "redis-benchmark -t set,get -n $N -c $CLIENTS${random_args[*]:+ ${random_args[*]}}, $(date -u +%Y-%m-%d), $(nproc) cores" \
  "($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')); redis-server" \
  "$(redis-server --version | awk '{print $3}' | cut -d= -f2) (persistence off); Tern: 1 meta, 3 replica servers," \
  "table of $PARTITIONS partitions x 3 replicas, tern proxy --resp-listen; all on this machine."
echo
echo "| target | -P | SET ops/s | SET p50 ms | SET p99 ms | GET ops/s | GET p50 ms | GET p99 ms |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for p in $PIPELINES; do
  for t in redis tern; do
    printf '| %s | %s | %.0f | %s | %s | %.0f | %s | %s |\n' "$t" "$p" \
      "$(field "$t" "$p" SET 2)" "$(field "$t" "$p" SET 5)" "$(field "$t" "$p" SET 7)" \
      "$(field "$t" "$p" GET 2)" "$(field "$t" "$p" GET 5)" "$(field "$t" "$p" GET 7)"
  done
done
echo
for p in $PIPELINES; do
  awk -v p="$p" -v ts="$(field tern "$p" SET 2)" -v rs="$(field redis "$p" SET 2)" \
    -v tg="$(field tern "$p" GET 2)" -v rg="$(field redis "$p" GET 2)" \
    'BEGIN { printf "-P %s: Tern/Redis SET %.2f, GET %.2f\n", p, ts / rs, tg / rg }'
done

count=$(grep -c -E ' (WARN|ERROR) ' "$work/proxy.log" || true)
[ "${count:-0}" -gt 0 ] && echo "== the proxy logged $count warnings/errors (KEEP=1 to keep $work/proxy.log)" >&2
exit 0
