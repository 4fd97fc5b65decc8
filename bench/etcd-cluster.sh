#!/usr/bin/env bash
# A local 3-member etcd cluster for `tern bench --target etcd` (used by bench/run.sh).
#
#   bench/etcd-cluster.sh start DIR   # prints the client endpoints, comma-separated
#   bench/etcd-cluster.sh stop DIR
#
# Installs Debian's etcd-server if `etcd` is missing (needs root or sudo). Members listen on
# 127.0.0.1 on ports picked when starting; data, logs, pids and endpoints live in DIR. fsync
# stays on (etcd's default), as Tern fsyncs its log before acknowledging a write.
set -euo pipefail

usage() {
  echo "usage: $0 start|stop DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
dir=$2

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "etcd-cluster: need root to run: $*" >&2
    return 1
  fi
}

install_etcd() {
  command -v etcd >/dev/null && return 0
  echo "etcd-cluster: installing etcd-server" >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2 ||
    { as_root apt-get update -q >&2 && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q etcd-server >&2; }
  command -v etcd >/dev/null || { echo "etcd-cluster: etcd is still missing after installing etcd-server" >&2; return 1; }
}

# shellcheck source=free-port.sh
source "$(dirname "$0")/free-port.sh"

alive() { [ -n "$1" ] && kill -0 "$1" 2>/dev/null; }

stop_cluster() {
  [ -f "$dir/pids" ] || return 0
  local pids
  pids=$(cat "$dir/pids")
  for pid in $pids; do alive "$pid" && kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 1 100); do
    local left=0
    for pid in $pids; do alive "$pid" && left=1; done
    [ "$left" -eq 0 ] && break
    sleep 0.1
  done
  for pid in $pids; do alive "$pid" && kill -KILL "$pid" 2>/dev/null || true; done
  rm -f "$dir/pids"
}

start_cluster() {
  if [ -f "$dir/pids" ]; then
    for pid in $(cat "$dir/pids"); do
      if alive "$pid"; then
        echo "etcd-cluster: already running in $dir (pid $pid); stop it first" >&2
        return 1
      fi
    done
  fi
  install_etcd
  mkdir -p "$dir"
  local client=() peer=() members=() pids=()
  for i in 1 2 3; do
    client[i]=$(free_port)
    peer[i]=$(free_port)
    members+=("m$i=http://127.0.0.1:${peer[i]}")
  done
  local initial
  initial=$(IFS=,; echo "${members[*]}")
  for i in 1 2 3; do
    etcd --name "m$i" --data-dir "$dir/m$i.etcd" \
      --listen-client-urls "http://127.0.0.1:${client[i]}" \
      --advertise-client-urls "http://127.0.0.1:${client[i]}" \
      --listen-peer-urls "http://127.0.0.1:${peer[i]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${peer[i]}" \
      --initial-cluster "$initial" --initial-cluster-token "tern-bench-$$" \
      --initial-cluster-state new \
      </dev/null >"$dir/m$i.log" 2>&1 &
    pids+=($!)
  done
  echo "${pids[*]}" >"$dir/pids"
  local endpoints
  endpoints=$(IFS=,; echo "${client[*]/#/127.0.0.1:}")
  echo "$endpoints" >"$dir/endpoints"
  # Healthy = every member answers /health with a leader elected.
  local deadline=$((SECONDS + 60))
  for i in 1 2 3; do
    until curl -fsS "http://127.0.0.1:${client[i]}/health" 2>/dev/null | grep -q '"health":"true"'; do
      if ! alive "${pids[i - 1]}"; then
        echo "etcd-cluster: member m$i exited; see $dir/m$i.log" >&2
        stop_cluster
        return 1
      fi
      if [ "$SECONDS" -ge "$deadline" ]; then
        echo "etcd-cluster: member m$i not healthy after 60 s; see $dir/m$i.log" >&2
        stop_cluster
        return 1
      fi
      sleep 0.2
    done
  done
  echo "$endpoints"
}

case "$cmd" in
  start) start_cluster ;;
  stop) stop_cluster ;;
  *) usage ;;
esac
