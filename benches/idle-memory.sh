#!/usr/bin/env bash
# Idle memory after a burst (issue 16): start warren, note its resident memory (VmRSS)
# idle, run warren-bench bursts REPS times each (the bench deletes its queues), then
# sample VmRSS right after and over the next seconds. Exits 1 when RSS 10 s after the
# bursts is more than SLACK MB above the idle figure: the regression check for memory a
# burst leaves behind (it once held 612 MB at rest; see the issue-16 commits on why:
# transient confirms' store completions piling up in the outbox, and what glibc keeps
# without a trim).
#
#   benches/idle-memory.sh [--reps N] [--secs S] [--slack MB] [--bursts LIST]
#                          [--lavinmq PATH]                  (defaults 3, 5, 8, default)
#
# Bursts (comma list): publish, noack, confirm (16 B each: the default set),
# confirm-persistent (16 B, delivery mode 2 into a durable queue), noack-64k (64 KiB
# bodies), connections (1000 idle connections opened, held S seconds, closed); `all` is
# every one. --lavinmq PATH measures a LavinMQ binary instead of warren, on a data
# directory of its own and free loopback ports, for comparison (no pass/fail then).
#
# Environment: WARREN_BIN (default target/release/warren), BENCH_BIN (default
# target/release/warren-bench). Build both first:
#   cargo build --release -p warren -p warren-tools
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
reps=3 secs=5 slack=8 bursts=default lavinmq=""
while [ $# -gt 0 ]; do
  case $1 in
    --reps) reps=$2; shift 2 ;;
    --secs) secs=$2; shift 2 ;;
    --slack) slack=$2; shift 2 ;;
    --bursts) bursts=$2; shift 2 ;;
    --lavinmq) lavinmq=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
case $bursts in
  default) bursts=publish,noack,confirm ;;
  all) bursts=publish,noack,confirm,confirm-persistent,noack-64k,connections ;;
esac
burst_args() { # name -> warren-bench arguments
  case $1 in
    publish | noack | confirm) echo "--scenario $1 --seconds $secs" ;;
    confirm-persistent) echo "--scenario confirm --persistent --seconds $secs" ;;
    noack-64k) echo "--scenario noack --size 65536 --seconds $secs" ;;
    connections) echo "--scenario connections --connections 1000 --seconds $secs" ;;
    *) echo "unknown burst $1" >&2; return 2 ;;
  esac
}
for b in ${bursts//,/ }; do burst_args "$b" >/dev/null; done
warren=${WARREN_BIN:-$root/target/release/warren}
bench=${BENCH_BIN:-$root/target/release/warren-bench}
dir=$(mktemp -d /tmp/warren-idle-memory.XXXXXX)
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ -n "$lavinmq" ]; then
  free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
  port=$(free_port)
  mkdir -p "$dir/data"
  "$lavinmq" --data-dir "$dir/data" --bind 127.0.0.1 --amqp-port "$port" \
    --http-port "$(free_port)" --http-unix-path "$dir/data/http.sock" >"$dir/out" 2>&1 &
  pid=$!
  broker=LavinMQ
else
  "$warren" --port 0 --management-port 0 --prometheus-port 0 --bind 127.0.0.1 \
    --data-dir "$dir/data" >"$dir/out" 2>"$dir/err" &
  pid=$!
  broker=warren
fi
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$dir"' EXIT
answers() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
for _ in $(seq 100); do
  if [ -n "$lavinmq" ]; then answers "$port" && break; else grep -q ready "$dir/out" 2>/dev/null && break; fi
  sleep 0.1
done
[ -n "$lavinmq" ] || port=$(head -1 "$dir/out" | grep -o '[0-9]*$')
rss() { awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status"; }
sleep 1
idle=$(rss)
echo "$broker idle: $idle MB"
for i in $(seq "$reps"); do
  for b in ${bursts//,/ }; do
    # shellcheck disable=SC2046 # the arguments are words
    line=$("$bench" --url "amqp://guest:guest@127.0.0.1:$port/%2f" --json \
      --broker-pid "$pid" $(burst_args "$b") | head -1)
    rate=$(echo "$line" | sed -nE 's/.*"rate":([0-9.]+).*/\1/p')
    echo "$b #$i: ${rate%.*} $([ "$b" = connections ] && echo conns || echo msg)/s, then $(rss) MB"
  done
done
echo "right after: $(rss) MB"
for t in 1 2 5 10; do
  sleep $((t - ${prev:-0})); prev=$t
  echo "+${t}s: $(rss) MB"
done
after=$(rss)
echo "peak (VmHWM): $(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status") MB"
if [ -n "$lavinmq" ]; then
  echo "$broker: $after MB 10 s after the bursts, idle was $idle MB"
  exit 0
fi
if awk -v a="$after" -v i="$idle" -v s="$slack" 'BEGIN { exit !(a > i + s) }'; then
  echo "FAIL: $after MB 10 s after the bursts, idle was $idle MB (slack $slack MB)"
  exit 1
fi
echo "ok: $after MB 10 s after the bursts, idle was $idle MB (slack $slack MB)"
