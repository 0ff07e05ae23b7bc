#!/usr/bin/env bash
# Every fault script in turn, with CI budgets by default (about 5 minutes on 2 cores):
# kill -9 20 cycles, disk full in both modes (skipped without root: it mounts a tmpfs),
# each hostile client for 10 s beside a good client paced at 50,000 msg/s, 10,000
# connections, 100,000 queues and 20,000 exclusive queues, a three-node cluster's leader
# killed 3 times and a follower and the leader cut off for 5 s (cluster.sh --quick).
# --full: 100 cycles, 30 s per hostile client beside an unpaced good client, 100,000
# exclusive queues, the cluster's leader killed 20 times with 8 s cuts.
# Goes on after a failure; exits 1 if any script failed. Results: $FAULTS_OUT/results.jsonl.
#
#   benches/faults/run-all.sh [--full]
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
cycles=20 during=10 exclusive=20000 good_rate=50000
kinds=never-reading-noack,never-reading-prefetch0,endless-body,channels-queues,slowloris
cluster=(--quick)
if [ "${1:-}" = --full ]; then
  cycles=100 during=30 exclusive=100000 good_rate=0 cluster=(--cycles 20)
fi
source "$here/lib.sh"
export NO_BUILD=1 FAULTS_OUT
failed=()
run() {
  local name=$1; shift
  echo "== $name" >&2
  timeout 900 "$@" || failed+=("$name")
}
run kill9 "$here/kill9.sh" --cycles "$cycles"
if [ "$(id -u)" = 0 ]; then
  run diskfull "$here/diskfull.sh"
else
  echo "== diskfull skipped: mounting a tmpfs needs root" >&2
fi
run hostile "$here/hostile.sh" --during "$during" --good-rate "$good_rate" --kinds "$kinds"
run scale "$here/scale.sh" --exclusive-queues "$exclusive"
run cluster "$here/cluster.sh" "${cluster[@]}"
echo "results: $results" >&2
if [ ${#failed[@]} -gt 0 ]; then
  echo "fault scripts failed: ${failed[*]}" >&2
  exit 1
fi
