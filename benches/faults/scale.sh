#!/usr/bin/env bash
# Scale: hold 10,000 connections (one channel each, warren-bench's `connections`
# scenario), then 100,000 queues (declared on one connection by warren-faults `queues`),
# then N exclusive queues on one connection, each on a fresh broker, and report its
# resident memory per connection and per queue (VmRSS delta / count). Fails when any
# cannot be held or the broker stops answering.
#
#   benches/faults/scale.sh [--connections N] [--queues N] [--exclusive-queues N]
#
# Exclusive queues get their own run because each declare costs more as the connection
# holds more of them (20,000 by default: 100,000 took 130 s at c54a01c).
#
# Environment: see lib.sh. The open-file limit is raised to the hard limit (each side
# needs one descriptor per connection).
set -euo pipefail
connections=10000
queues=100000
exclusive=20000
while [ $# -gt 0 ]; do
  case "$1" in
    --connections) connections=$2; shift ;;
    --queues) queues=$2; shift ;;
    --exclusive-queues) exclusive=$2; shift ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
source "$(dirname "$0")/lib.sh"
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" -lt $((connections + 100)) ]; then
  echo "scale: open-file limit $(ulimit -n) is too low for $connections connections" >&2
  exit 2
fi
data=$(mktemp -d "${TMPDIR:-/tmp}/warren-scale.XXXXXX")
pid=""
trap '[ -n "$pid" ] && { kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null; }; rm -rf "$data"' EXIT
# A fresh broker for each measurement, so each has its own idle baseline.
start_broker() {
  rm -rf "${data:?}/data"
  : >"$data/out" # exists before the broker's shell opens it, for the loop below
  "$WARREN_BIN" --port 0 --management-port 0 --prometheus-port 0 --bind 127.0.0.1 --data-dir "$data/data" --log warn \
    >"$data/out" 2>>"$FAULTS_OUT/scale.log" </dev/null &
  pid=$!
  port=""
  for _ in $(seq 1 300); do
    port=$(sed -nE 's|^warren .* ready on amqp://[^ ]*:([0-9]+).*|\1|p' "$data/out")
    [ -n "$port" ] && break
    sleep 0.1
  done
  [ -n "$port" ] || { echo "scale: warren did not start" >&2; exit 1; }
  url="amqp://guest:guest@127.0.0.1:$port/%2f"
}
stop_broker() {
  kill -0 "$pid" 2>/dev/null || { echo "FAIL scale: the broker exited" >&2; failed=1; }
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null || true
  pid=""
}
failed=0
start_broker
echo "scale: $connections connections" >&2
"$BENCH_BIN" --url "$url" --scenario connections --connections "$connections" \
  --seconds 5 --broker-pid "$pid" --json --label warren >"$FAULTS_OUT/scale-connections.json" \
  2>"$FAULTS_OUT/scale-connections.err" || failed=1
# rss_delta_kb / connections, in bytes, added to the line
python3 - "$FAULTS_OUT/scale-connections.json" "$connections" <<'PY' | tee -a "$results"
import json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    if "rss_delta_kb" in r:
        r["bytes_per_connection"] = round(r["rss_delta_kb"] * 1024 / int(sys.argv[2]))
    r["test"] = "scale-connections"
    print(json.dumps(r))
PY
[ $failed = 0 ] || { echo "FAIL scale-connections:" >&2; tail -5 "$FAULTS_OUT/scale-connections.err" >&2; }
stop_broker
start_broker
echo "scale: $queues queues" >&2
faults scale-queues queues --url "$url" --broker-pid "$pid" --queues "$queues" --shared \
  || failed=1
stop_broker
start_broker
echo "scale: $exclusive exclusive queues" >&2
faults scale-exclusive-queues queues --url "$url" --broker-pid "$pid" --queues "$exclusive" \
  || failed=1
stop_broker
exit $failed
