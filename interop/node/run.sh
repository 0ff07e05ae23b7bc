#!/usr/bin/env bash
# Usage: interop/node/run.sh AMQP_URL [NN ...]
# Prints one line per scenario (NN pass | NN FAIL reason | NN n/a reason) on stdout.
set -uo pipefail
cd "$(dirname "$0")"
URL="${1:-amqp://guest:guest@127.0.0.1:5682/%2f}"
shift || true
./setup.sh >&2 || { echo "node setup failed" >&2; exit 2; }
# Whole-run guard: 18 scenarios x 20 s each at most, plus slack.
exec timeout -k 10 420 node run.js "$URL" "$@"
