#!/usr/bin/env bash
# Hostile clients, one at a time, each beside a well-behaved client whose delivery rate
# is sampled every 0.5 s before and during the attack (medians compared), while the
# broker's RSS is watched. The broker runs with --queue-memory 64MiB and --memory-limit
# 112MiB (queues, exchanges and bindings count there: a client that creates them while
# usage is past 80% of it is held back); it must stay under --rss-limit-mb (default 160:
# the 64 MiB budget plus 96 MiB for the process, its connections and buffers) and the
# good client must keep half its rate (--min-ratio).
#
#   benches/faults/hostile.sh [--during SECS] [--kinds k1,k2,...] [--sockets N]
#                             [--backlog N] [--rss-limit-mb MB] [--min-ratio R]
#                             [--good-rate MSGS_PER_SEC]
#
# --good-rate: the good client's offered rate (default 0: as fast as it can, which
# shows any CPU the broker gives the attacker but is noisy on a busy 2-core machine;
# run-all.sh uses 50000 in CI).
#
# Kinds: never-reading-noack, never-reading-prefetch0, endless-body, channels-queues,
# slowloris (all by default). Default 10 s of attack each (CI). Environment: see lib.sh.
set -euo pipefail
during=10
kinds=never-reading-noack,never-reading-prefetch0,endless-body,channels-queues,slowloris
sockets=1000
backlog=200000
rss_limit=160
min_ratio=0.5
good_rate=0
while [ $# -gt 0 ]; do
  case "$1" in
    --during) during=$2; shift ;;
    --kinds) kinds=$2; shift ;;
    --sockets) sockets=$2; shift ;;
    --backlog) backlog=$2; shift ;;
    --rss-limit-mb) rss_limit=$2; shift ;;
    --min-ratio) min_ratio=$2; shift ;;
    --good-rate) good_rate=$2; shift ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
source "$(dirname "$0")/lib.sh"
data=$(mktemp -d "${TMPDIR:-/tmp}/warren-hostile.XXXXXX")
trap 'rm -rf "$data"' EXIT
ulimit -n "$(ulimit -Hn)"
failed=0
for k in ${kinds//,/ }; do
  secs=$during
  # warren drops a handshake not done in 10 s (RabbitMQ's handshake_timeout): watch longer.
  [ "$k" = slowloris ] && [ "$secs" -lt 15 ] && secs=15
  echo "hostile: $k for $secs s" >&2
  rm -rf "${data:?}/data"
  faults "hostile-$k" --data-dir "$data/data" --log "$FAULTS_OUT/hostile-$k.log" \
    --broker-arg=--queue-memory=64MiB --broker-arg=--memory-limit=112MiB \
    hostile --kind "$k" --during-secs "$secs" --sockets "$sockets" --backlog "$backlog" \
    --rss-limit-mb "$rss_limit" --min-ratio "$min_ratio" --good-rate "$good_rate" || failed=1
done
exit $failed
