#!/bin/sh
# Usage: run.sh AMQP_URL  -- the `admin` row: rabbitmqadmin against the management API
# at WARREN_INTEROP_HTTP_URL (interop/run.sh sets it when it starts warren), see check.sh.
set -u
DIR="$(cd "$(dirname "$0")" && pwd)"
if [ -z "${WARREN_INTEROP_HTTP_URL:-}" ]; then
  echo "admin n/a no management API URL (WARREN_INTEROP_HTTP_URL unset)"
  exit 0
fi
exec bash "$DIR/check.sh" "$WARREN_INTEROP_HTTP_URL"
