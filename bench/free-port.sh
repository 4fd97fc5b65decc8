# shellcheck shell=bash
# Sourced by bench/etcd-cluster.sh and bench/resp.sh: free loopback ports for the servers they
# start.
#
#   port=$(free_port)   # a TCP port free on 127.0.0.1 (python3 binds port 0; without python3,
#                       # a random one that `ss` does not list)

# Ports handed out by this run, so that two calls cannot return the same one.
taken=" "
free_port() {
  local p
  for _ in $(seq 1 200); do
    if command -v python3 >/dev/null; then
      p=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    else
      p=$((20000 + RANDOM % 40000))
      ss -Htan | awk '{print $4}' | grep -q ":$p\$" && continue
    fi
    case "$taken" in *" $p "*) continue ;; esac
    taken="$taken$p "
    echo "$p"
    return 0
  done
  echo "$(basename "$0"): found no free port" >&2
  return 1
}
