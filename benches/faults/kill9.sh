#!/usr/bin/env bash
# kill -9 under load: 3 publishers send persistent messages with confirms to 2 durable
# queues while a consumer acks; the broker is SIGKILLed 0.2-1.5 s after each start and
# started again on the same data directory. At the end the queues are drained, the broker
# is stopped gracefully and started once more (nothing may come back). Every message id
# is judged: 0 confirmed messages lost; a message delivered again only when the kill
# explains it (never acked, ack in flight, or ack handled but not yet synced).
#
#   benches/faults/kill9.sh [--cycles N] [--rate MSGS_PER_SEC] [--seed S]
#
# Default 20 cycles (CI); the issue's figure is --cycles 100. Environment: see lib.sh.
set -euo pipefail
cycles=20
args=()
seed=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cycles) cycles=$2; shift ;;
    --rate) args+=(--rate "$2"); shift ;;
    --seed) seed=(--seed "$2"); shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
source "$(dirname "$0")/lib.sh"
data=$(mktemp -d "${TMPDIR:-/tmp}/warren-kill9.XXXXXX")
trap 'rm -rf "$data"' EXIT
echo "kill9: $cycles cycles" >&2
faults kill9 --data-dir "$data/data" --log "$FAULTS_OUT/kill9.log" "${seed[@]}" \
  kill9 --cycles "$cycles" "${args[@]}"
