#!/usr/bin/env bash
# Idle memory after a burst (issue 16): start warren, note its resident memory (VmRSS)
# idle, run warren-bench's publish, noack and confirm scenarios REPS times each (16 B
# bodies; the bench deletes its queues), then sample VmRSS right after and over the
# next seconds. Exits 1 when RSS 10 s after the burst is more than SLACK MB above the
# idle figure: the regression check for memory a burst leaves behind (it once held
# 612 MB at rest; see the issue-16 commits on why: transient confirms' store
# completions piling up in the outbox, and what glibc keeps without a trim).
#
#   benches/idle-memory.sh [--reps N] [--secs S] [--slack MB]    (defaults 3, 5, 8)
#
# Environment: WARREN_BIN (default target/release/warren), BENCH_BIN (default
# target/release/warren-bench). Build both first:
#   cargo build --release -p warren -p warren-tools
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
reps=3 secs=5 slack=8
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --slack) slack=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
warren=${WARREN_BIN:-$root/target/release/warren}
bench=${BENCH_BIN:-$root/target/release/warren-bench}
dir=$(mktemp -d /tmp/warren-idle-memory.XXXXXX)
"$warren" --port 0 --management-port 0 --prometheus-port 0 --bind 127.0.0.1 \
  --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
for _ in $(seq 100); do grep -q ready "$dir/out" 2>/dev/null && break; sleep 0.1; done
port=$(head -1 "$dir/out" | grep -o '[0-9]*$')
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
sleep 1
idle=$(rss)
echo "idle: $idle MB"
for i in $(seq "$reps"); do
  for s in publish noack confirm; do
    line=$("$bench" --url "amqp://guest:guest@127.0.0.1:$port/%2f" --scenario "$s" \
      --seconds "$secs" | grep -E "^$s ")
    echo "$s #$i: $(echo "$line" | awk '{ print $5 }') msg/s, then $(rss) MB"
  done
done
echo "right after: $(rss) MB"
for t in 1 2 5 10; do
  sleep $((t - ${prev:-0})); prev=$t
  echo "+${t}s: $(rss) MB"
done
after=$(rss)
echo "peak (VmHWM): $(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status") MB"
if awk -v a="$after" -v i="$idle" -v s="$slack" 'BEGIN { exit !(a > i + s) }'; then
  echo "FAIL: $after MB 10 s after the burst, idle was $idle MB (slack $slack MB)"
  exit 1
fi
echo "ok: $after MB 10 s after the burst, idle was $idle MB (slack $slack MB)"
