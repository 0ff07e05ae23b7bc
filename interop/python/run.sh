#!/bin/sh
# Usage: run.sh AMQP_URL  -- runs scenarios 01..15 and tls with pika (one line each on stdout).
# Optional: ONLY=03,07 run.sh URL runs a subset.
set -u
URL="${1:?usage: run.sh AMQP_URL}"
DIR="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import pika' >/dev/null 2>&1; then
  echo "pika missing: run $DIR/setup.sh" >&2
  exit 1
fi
exec "$PY" "$DIR/scenarios.py" "$URL"
