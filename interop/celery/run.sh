#!/bin/sh
# Usage: run.sh AMQP_URL  -- a real Celery worker (pyamqp transport, rpc:// results)
# against the broker; prints exactly one line: `celery pass` or `celery FAIL <reason>`.
set -u
URL="${1:?usage: run.sh AMQP_URL}"
DIR="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import celery' >/dev/null 2>&1; then
  echo "celery missing: run $DIR/setup.sh" >&2
  exit 1
fi
if command -v timeout >/dev/null 2>&1; then
  out="$(timeout --foreground -k 5 150 "$PY" "$DIR/check.py" "$URL")"
else
  out="$("$PY" "$DIR/check.py" "$URL")"
fi
line="$(printf '%s\n' "$out" | grep -E '^celery (pass|FAIL)' | tail -n 1)"
[ -n "$line" ] || line="celery FAIL no result (timeout or crash)"
printf '%s\n' "$line"
