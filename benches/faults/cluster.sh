#!/usr/bin/env bash
# A three-node cluster under confirmed persistent load on two quorum queues (issue 17,
# docs/clustering.md 5.3): the leader of queue 1 is killed with SIGKILL and restarted on
# its data directory N times (time to the first confirm and the first delivery after each
# kill), then a follower and the leader are each cut off for a few seconds through the
# TCP proxies every node dials its peers through (no root: 127.0.0.1-3 and ports
# 26100-26399 by default). 0 confirmed messages may be lost, no id may be delivered that
# was never published, and a cut node may confirm nothing written to it during the cut.
#
#   benches/faults/cluster.sh [--cycles N] [--quick] [--partitions 0|1|2] [--cut-secs S]
#                             [--budget SECS] [--port-base P] [--seed S] [--rate R]
#                             [--broker-arg=--cluster-heartbeat-ms=200 ...]
#
# Default 20 cycles and both partitions within a 10 min budget; --quick (CI): 3 cycles,
# both partitions, 5 s cuts, 4 min budget. Environment: see lib.sh. The nodes' logs are
# $FAULTS_OUT/cluster.n{1,2,3}.log; a failed run's data directories are kept.
set -euo pipefail
cycles=20 budget=600
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles=$2; shift ;;
    --quick) cycles=3 budget=240; args+=(--cut-secs 5) ;;
    --budget) budget=$2; shift ;;
    --partitions|--cut-secs|--port-base|--seed|--rate)
      args+=("$1" "$2"); shift ;;
    --broker-arg=*) args+=("$1") ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
source "$(dirname "$0")/lib.sh"
work=$(mktemp -d "${TMPDIR:-/tmp}/warren-cluster.XXXXXX")
rc=0
cleanup() {
  # The tool kills its nodes itself (also on SIGTERM); if it was killed outright, kill
  # what its pid file lists -- only processes whose command line names our work dir.
  if [ -f "$work/run/pids" ]; then
    while read -r pid; do
      if [ -n "$pid" ] && grep -qa -- "$work/run" "/proc/$pid/cmdline" 2>/dev/null; then
        kill -9 "$pid" 2>/dev/null || true
      fi
    done <"$work/run/pids"
  fi
  if [ "$rc" = 0 ]; then rm -rf "$work"; else echo "cluster: data kept in $work" >&2; fi
}
trap cleanup EXIT
# lib.sh's `faults` runs $FAULTS_BIN: bound it with timeout (SIGTERM first: the tool
# then kills its nodes; SIGKILL 15 s later).
real_bin=$FAULTS_BIN
FAULTS_BIN=$work/warren-faults-timeout
printf '#!/bin/sh\nexec timeout -k 15 %s %q "$@"\n' "$((budget + 60))" "$real_bin" >"$FAULTS_BIN"
chmod +x "$FAULTS_BIN"
echo "cluster: $cycles cycles, budget ${budget} s" >&2
faults cluster --log "$FAULTS_OUT/cluster.log" \
  cluster --cycles "$cycles" --budget "$budget" --work-dir "$work/run" "${args[@]}" || rc=$?
exit $rc
