#!/usr/bin/env bash
# Starts one Quire node per NUMA node of this machine, each bound to its
# node's CPUs and memory with numactl, on its own ports and data directory,
# all joined as one cluster (every node seeds from all the others').
#
#   deploy/launch-numa.sh [--dry-run] [--host 127.0.0.1] [--base-port 7400]
#                         [--data-root /var/lib/quire] [--secret S]
#                         [--quire PATH] [-- extra quire node arguments]
#
# Node N listens on base-port + 100*N (its shards take links on the ports
# after it) and serves /metrics on base-port + 100*N + 99. The cluster secret comes from --secret or QUIRE_CLUSTER_SECRET.
# QUIRE_SYSFS (default /sys) lets tests fake a topology.
set -euo pipefail

dry_run=0
host=127.0.0.1
base_port=7400
data_root=/var/lib/quire
secret=${QUIRE_CLUSTER_SECRET:-}
quire=${QUIRE_BIN:-quire}
sysfs=${QUIRE_SYSFS:-/sys}
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --dry-run) dry_run=1 ;;
    --host) host=$2; shift ;;
    --base-port) base_port=$2; shift ;;
    --data-root) data_root=$2; shift ;;
    --secret) secret=$2; shift ;;
    --quire) quire=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "launch-numa: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

nodes=()
for dir in "$sysfs"/devices/system/node/node[0-9]*; do
  [ -d "$dir" ] || continue
  n=${dir##*/node}
  cpus=$(cat "$dir/cpulist" 2>/dev/null || true)
  # Memory-only NUMA nodes (no CPUs) run no shard.
  [ -n "$cpus" ] && nodes+=("$n")
done
if [ ${#nodes[@]} -eq 0 ]; then
  # No NUMA information: the machine is one node.
  nodes=(0)
fi
IFS=$'\n' nodes=($(sort -n <<<"${nodes[*]}")); unset IFS

if [ -z "$secret" ]; then
  if [ $dry_run -eq 1 ]; then
    secret='<secret>'
  else
    echo "launch-numa: a cluster secret is needed: --secret S or QUIRE_CLUSTER_SECRET" >&2
    exit 2
  fi
fi
if [ $dry_run -eq 0 ] && ! command -v numactl >/dev/null; then
  echo "launch-numa: numactl is not installed (Debian: apt-get install numactl)" >&2
  exit 1
fi

# Every node seeds from all the others (the first one too), so a node
# restarted on its own rejoins instead of running alone.
seeds_except() {
  local me=$1 list="" m
  for m in "${nodes[@]}"; do
    [ "$m" = "$me" ] && continue
    list+="${list:+,}$host:$((base_port + 100 * m))"
  done
  printf '%s' "$list"
}
pids=()
for n in "${nodes[@]}"; do
  port=$((base_port + 100 * n))
  cmd=(numactl --cpunodebind="$n" --membind="$n" "$quire" node
       --listen "$host:$port" --metrics "$host:$((port + 99))"
       --node-name "numa-$n" --data-dir "$data_root/node-$n"
       --secret "$secret")
  others=$(seeds_except "$n")
  [ -n "$others" ] && cmd+=(--seeds "$others")
  cmd+=("${extra[@]}")
  if [ $dry_run -eq 1 ]; then
    printf '%q ' "${cmd[@]}"; echo
  else
    mkdir -p "$data_root/node-$n"
    "${cmd[@]}" >"$data_root/node-$n.log" 2>&1 &
    pids+=($!)
    echo "numa node $n: pid $!, listening on $host:$port, metrics on http://$host:$((port + 99))/metrics, log $data_root/node-$n.log"
  fi
done
if [ $dry_run -eq 0 ]; then
  trap 'kill -INT "${pids[@]}" 2>/dev/null; wait' INT TERM
  wait
fi
