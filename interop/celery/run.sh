#!/bin/sh
# Usage: run.sh AMQP_URL  -- a real Celery worker (pyamqp transport, rpc:// results)
# against the broker; prints `celery pass` or `celery FAIL <reason>`, then the same
# for scenario 17 (`17 pass`: as a non-guest user on its own vhost, see check.py).
set -u
URL="${1:?usage: run.sh AMQP_URL}"
DIR="$(cd "$(dirname "$0")" && pwd)"
PY="${PYTHON:-python3}"
if ! "$PY" -c 'import celery' >/dev/null 2>&1; then
  echo "celery missing: run $DIR/setup.sh" >&2
  exit 1
fi
# One line for the guest check, then one for scenario 17 (a non-guest user on its vhost).
for mode in "" --vhost-user; do
  label=celery
  [ -n "$mode" ] && label=17
  if command -v timeout >/dev/null 2>&1; then
    out="$(timeout --foreground -k 5 150 "$PY" "$DIR/check.py" "$URL" $mode)"
  else
    out="$("$PY" "$DIR/check.py" "$URL" $mode)"
  fi
  line="$(printf '%s\n' "$out" | grep -E "^$label (pass|FAIL)" | tail -n 1)"
  [ -n "$line" ] || line="$label FAIL no result (timeout or crash)"
  printf '%s\n' "$line"
done
