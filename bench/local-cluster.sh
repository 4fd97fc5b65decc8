# shellcheck shell=bash
# Sourced by bench/run.sh, bench/resp.sh and bench/quick.sh: one local Tern cluster for a
# benchmark.
#
#   build_tern                           # builds the release `tern`; sets $tern
#   start_local_cluster DIR PARTITIONS   # 1 meta + 3 replica servers, table `bench`; sets $meta
#                                        # (WORKER_THREADS: per server; default: `tern up`'s share of the cores)
#   stop_local_cluster DIR               # tern down, then kill -9 whatever did not stop in 10 s
#
# Needs $tern (the binary) and jq. Sets cluster_up=1 once started (for the caller's cleanup).

build_tern() {
  echo "== building tern (release)" >&2
  cargo build --release --bin tern >&2
  tern=$CARGO_TARGET_DIR/release/tern
}

start_local_cluster() {
  local dir=$1 partitions=$2
  echo "== starting a local Tern cluster in $dir" >&2
  cluster_up=1
  local extra=()
  if [ -n "${WORKER_THREADS:-}" ]; then extra=(--worker-threads "$WORKER_THREADS"); fi
  "$tern" up --dir "$dir" --clusters 1 --metas 1 --replicas 3 --table bench --partitions "$partitions" \
    --detach "${extra[@]}" >&2
  meta=$(jq -r '.metas | [.[]] | join(",")' "$dir/cluster.json")
  # `tern up` returns once the table exists; wait until every partition has a primary and two
  # secondaries, so that the first run does not measure the cluster's start.
  local deadline=$((SECONDS + 60))
  until [ "$("$tern" table describe bench --meta "$meta" --output json 2>/dev/null |
    jq '[.partitions[] | select(.primary != null and (.secondaries | length) == 2)] | length' 2>/dev/null)" = "$partitions" ]; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "$(basename "$0"): table bench is not fully replicated after 60 s; logs in $dir/logs" >&2
      KEEP=1
      exit 1
    fi
    sleep 0.5
  done
}

stop_local_cluster() {
  local dir=$1 pids
  echo "== stopping the Tern cluster" >&2
  pids=$(jq -r '.pids[]' "$dir/cluster.json" 2>/dev/null || true)
  "$tern" down --dir "$dir" >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    local left=0
    for pid in $pids; do kill -0 "$pid" 2>/dev/null && left=1; done
    [ "$left" -eq 0 ] && break
    sleep 0.1
  done
  for pid in $pids; do kill -KILL "$pid" 2>/dev/null || true; done
}
