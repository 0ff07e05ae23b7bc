#!/usr/bin/env bash
# Runs the interop scenarios 01..15 and 17 with librabbitmq (rabbitmq-c) against the AMQP URL given as $1.
# One line per scenario on stdout; everything else on stderr.
set -u
URL="${1:-amqp://guest:guest@127.0.0.1:5672/%2f}"
HERE="$(cd "$(dirname "$0")" && pwd)"
BIN="$HERE/build/scenarios"
if [ ! -x "$BIN" ] || [ "$HERE/scenarios.c" -nt "$BIN" ]; then
    mkdir -p "$HERE/build"
    if ! cc -std=c11 -O2 -Wall -Wextra -o "$BIN" "$HERE/scenarios.c" \
            $(pkg-config --cflags --libs librabbitmq 2>/dev/null || echo -lrabbitmq) >&2; then
        echo "build failed (is librabbitmq-dev installed? run $HERE/setup.sh)" >&2
        exit 2
    fi
fi
for n in $(seq -w 1 15) 17; do
    out="$(timeout -k 3 20 "$BIN" "$URL" "$n" 2> >(sed "s/^/[c $n] /" >&2))"
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
