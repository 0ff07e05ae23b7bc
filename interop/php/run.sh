#!/usr/bin/env bash
# Runs the interop scenarios 01..15 and 17 with php-amqplib against the AMQP URL given as $1.
# One line per scenario on stdout; everything else on stderr.
set -u
URL="${1:-amqp://guest:guest@127.0.0.1:5672/%2f}"
HERE="$(cd "$(dirname "$0")" && pwd)"
if ! command -v php >/dev/null 2>&1 || [ ! -f /usr/share/php/PhpAmqpLib/autoload.php ]; then
    echo "php or php-amqplib missing: run $HERE/setup.sh" >&2
    exit 2
fi
for n in $(seq -w 1 15) 17; do
    out="$(timeout -k 3 20 php -d memory_limit=512M "$HERE/scenarios.php" "$URL" "$n" 2> >(sed "s/^/[php $n] /" >&2))"
    rc=$?
    line="$(printf '%s\n' "$out" | grep -E "^$n (pass|FAIL|n/a)" | head -n1)"
    if [ -n "$line" ]; then
        echo "$line"
    elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
        echo "$n FAIL timeout (20 s)"
    else
        echo "$n FAIL exited with status $rc and no result"
    fi
done
exit 0
