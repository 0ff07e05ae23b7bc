#!/usr/bin/env bash
# Side-by-side benchmark: warren vs the reference RabbitMQ, every scenario of issue 5,
# alternating brokers, N repetitions; prints medians, ratios warren/RabbitMQ and each
# broker's resident memory (VmRSS) idle, with 1000 connections and with the 1M backlog.
#
#   benches/compare.sh [--quick] [--reps N] [--no-warren] [--no-rabbit] [--out DIR]
#
# Environment:
#   WARREN_BIN   warren binary            (default: target/release/warren, built if missing)
#   BENCH_BIN    warren-bench binary      (default: $CARGO_TARGET_DIR/release/warren-bench, then
#                                          target/release/warren-bench, built if missing)
#   RABBIT_URL   reference RabbitMQ       (default: amqp://guest:guest@127.0.0.1:5682/%2f)
#   RABBIT_PID   its beam.smp process id  (default: found from its pid file or listening socket)
#
# Defaults take about 10-15 minutes on 2 cores (581 s measured); --quick about 1.5-3.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
reps=3
quick=0
use_warren=1
use_rabbit=1
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --reps) reps=$2; shift ;;
    --no-warren) use_warren=0 ;;
    --no-rabbit) use_rabbit=0 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  [ "$reps" = 3 ] && reps=1
  secs=2; lat_secs=3; hold=2; backlog=200000; backlog_secs=30; sink_secs=1
else
  secs=5; lat_secs=10; hold=3; backlog=1000000; backlog_secs=60; sink_secs=3
fi

out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/warren-compare.XXXXXX")}
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

# --- binaries --------------------------------------------------------------------------
tdir=${CARGO_TARGET_DIR:-$root/target}
pick() { for f in "$@"; do [ -x "$f" ] && { echo "$f"; return; }; done; echo "$1"; }
bench=${BENCH_BIN:-$(pick "$tdir/release/warren-bench" "$root/target/release/warren-bench")}
if [ ! -x "$bench" ]; then
  echo "building warren-bench..." >&2
  (cd "$root" && cargo build --release -p warren-tools --bin warren-bench >&2)
fi
warren=${WARREN_BIN:-$(pick "$root/target/release/warren" "$tdir/release/warren")}
if [ "$use_warren" = 1 ] && [ ! -x "$warren" ]; then
  echo "building warren..." >&2
  (cd "$root" && cargo build --release --bin warren >&2) || true
  if [ ! -x "$warren" ]; then
    echo "no warren binary at $warren: comparing nothing but RabbitMQ" >&2
    use_warren=0
  fi
fi

# --- brokers ---------------------------------------------------------------------------
rabbit_url=${RABBIT_URL:-amqp://guest:guest@127.0.0.1:5682/%2f}
rabbit_port=$(echo "$rabbit_url" | sed -E 's#^amqps?://([^@/]*@)?[^:/]*:?([0-9]*).*#\2#')
rabbit_port=${rabbit_port:-5672}
rabbit_pid=${RABBIT_PID:-}
answers() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }

if [ "$use_rabbit" = 1 ]; then
  if ! answers "$rabbit_port"; then
    ref=$root/../shared/tools/reference-rabbitmq
    [ -x "$ref" ] && REFERENCE_PORT=$rabbit_port timeout 300 "$ref" start >&2 || true
  fi
  if ! answers "$rabbit_port"; then
    echo "reference RabbitMQ does not answer on port $rabbit_port: skipping it" >&2
    use_rabbit=0
  fi
fi
if [ "$use_rabbit" = 1 ] && [ -z "$rabbit_pid" ]; then
  pidfile=${TMPDIR:-/tmp}/reference-rabbitmq-$rabbit_port/pid
  [ -r "$pidfile" ] && rabbit_pid=$(tr -dc 0-9 <"$pidfile")
  if [ -z "$rabbit_pid" ] || ! grep -q beam "/proc/$rabbit_pid/cmdline" 2>/dev/null; then
    rabbit_pid=$(ss -ltnpH "sport = :$rabbit_port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  fi
  if [ -z "$rabbit_pid" ]; then
    rabbit_pid=$(pgrep -f 'beam.*warren-ref' | head -1 || true)
  fi
  [ -n "$rabbit_pid" ] || echo "cannot find the RabbitMQ process: no memory figures for it" >&2
fi

warren_pid=""
warren_url=""
startup_ms=""
stop_warren() {
  if [ -n "$warren_pid" ]; then
    kill "$warren_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$warren_pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$warren_pid" 2>/dev/null || true
    wait "$warren_pid" 2>/dev/null || true
    warren_pid=""
  fi
}
trap stop_warren EXIT
# (Re)start warren; sets warren_pid, warren_url, startup_ms. Returns 1 if it does not come up.
start_warren() {
  stop_warren
  local t0 port=""
  t0=$(date +%s%N)
  rm -rf "$out/warren-data"; "$warren" --port 0 --management-port 0 --prometheus-port 0 --bind 127.0.0.1 --data-dir "$out/warren-data" >"$out/warren.stdout" 2>>"$out/warren.stderr" &
  warren_pid=$!
  for _ in $(seq 5000); do
    port=$(sed -nE 's#^warren .* ready on amqp://[^:]+:([0-9]+).*#\1#p' "$out/warren.stdout" | head -1)
    [ -n "$port" ] && break
    kill -0 "$warren_pid" 2>/dev/null || break
    sleep 0.002
  done
  if [ -z "$port" ]; then
    echo "warren did not print its ready line; see $out/warren.std*" >&2
    return 1
  fi
  for _ in $(seq 1000); do answers "$port" && break; sleep 0.001; done
  startup_ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  echo "$startup_ms" >>"$out/startup_ms"
  warren_url="amqp://guest:guest@127.0.0.1:$port/%2f"
}
if [ "$use_warren" = 1 ]; then
  start_warren || use_warren=0
fi
[ "$use_warren" = 1 ] || [ "$use_rabbit" = 1 ] || { echo "no broker to measure" >&2; exit 1; }

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
sleep 1
idle_warren=""; idle_rabbit=""
[ "$use_warren" = 1 ] && idle_warren=$(rss "$warren_pid")
[ "$use_rabbit" = 1 ] && [ -n "$rabbit_pid" ] && idle_rabbit=$(rss "$rabbit_pid")

# --- runs ------------------------------------------------------------------------------
# one line per scenario: extra arguments to warren-bench. Scenarios marked "fresh:" run against
# a freshly started warren, so its memory figures are not inflated by earlier scenarios
# (the shared reference RabbitMQ cannot be restarted; its "idle" is whatever it holds then).
scenarios=(
  "--scenario publish --size 16 --seconds $secs"
  "--scenario noack --size 16 --seconds $secs"
  "--scenario ack --size 16 --seconds $secs"
  "--scenario confirm --size 16 --seconds $secs"
  "--scenario confirm --persistent --size 16 --seconds $secs"
  "--scenario fanout --size 16 --seconds $secs"
  "--scenario noack --size 4096 --seconds $secs"
  "--scenario noack --size 65536 --seconds $secs"
  "--scenario latency --size 16 --seconds $lat_secs"
  "fresh: --scenario connections --connections 1000 --seconds $hold"
  "fresh: --scenario backlog --size 16 --messages $backlog --seconds $backlog_secs"
)

run_one() { # broker rep args...
  local broker=$1 rep=$2; shift 2
  local url pid
  if [ "$broker" = warren ]; then url=$warren_url; pid=$warren_pid; else url=$rabbit_url; pid=$rabbit_pid; fi
  local pidarg=()
  [ -n "$pid" ] && pidarg=(--broker-pid "$pid")
  echo "  [$broker rep $rep] $*" >&2
  timeout 600 "$bench" --url "$url" --json --label "$broker" "${pidarg[@]}" "$@" 2>>"$out/bench.stderr" \
    | sed "s/^{/{\"rep\":$rep,/" >>"$results" || echo "    (failed or partial; see $out/bench.stderr)" >&2
}

started=$(date +%s)
echo "generator ceiling (in-process sink)..." >&2
timeout 300 "$bench" --scenario sink --size 16,4096,65536 --seconds "$sink_secs" --json --label sink \
  | sed 's/^{/{"rep":1,/' >>"$results" || true
for rep in $(seq "$reps"); do
  echo "repetition $rep of $reps" >&2
  i=0
  for sc in "${scenarios[@]}"; do
    fresh=0
    case "$sc" in fresh:*) fresh=1; sc=${sc#fresh: } ;; esac
    # alternate which broker goes first, per scenario and per repetition
    if [ $(( (rep + i) % 2 )) = 0 ]; then order="warren rabbitmq"; else order="rabbitmq warren"; fi
    for b in $order; do
      if [ "$b" = warren ] && [ "$use_warren" = 1 ]; then
        if [ "$fresh" = 1 ]; then start_warren && sleep 0.5 || { echo "    warren restart failed" >&2; continue; }; fi
        run_one warren "$rep" $sc
      fi
      if [ "$b" = rabbitmq ] && [ "$use_rabbit" = 1 ]; then run_one rabbitmq "$rep" $sc; fi
    done
    i=$((i + 1))
  done
done
elapsed=$(( $(date +%s) - started ))

# --- summary ---------------------------------------------------------------------------
python3 - "$results" "$idle_warren" "$idle_rabbit" "$out/startup_ms" "$elapsed" "$reps" <<'PY'
import json, os, statistics, sys
path, idle_w, idle_r, startup_file, elapsed, reps = sys.argv[1:7]
starts = [int(l) for l in open(startup_file)] if os.path.exists(startup_file) else []
rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
def med(label, scen, size, field="rate"):
    v = [r[field] for r in rows if r.get("label") == label and r["scenario"] == scen
         and r.get("size") == size and field in r and "error" not in r]
    return statistics.median(v) if v else None
def fmt(v, unit=""):
    if v is None: return "-"
    if abs(v) >= 100: return f"{v:,.0f}{unit}"
    return f"{v:.1f}{unit}"
def ratio(w, r):
    return f"{w / r:.2f}x" if w is not None and r else "-"
errors = [r for r in rows if "error" in r]
print(f"\nwarren vs RabbitMQ: medians of {reps} repetition(s), run took {elapsed}s")
print(f"{'scenario':<30} {'warren':>14} {'RabbitMQ':>14} {'ratio':>8}")
lines = [
    ("publish-only 16 B (msg/s)", "publish", 16, "rate"),
    ("1->1 no-ack 16 B (msg/s)", "noack", 16, "rate"),
    ("1->1 ack pf1000 16 B (msg/s)", "ack", 16, "rate"),
    ("confirms w1000 16 B (msg/s)", "confirm", 16, "rate"),
    ("confirms persistent (msg/s)", "confirm-persistent", 16, "rate"),
    ("fanout x10 16 B (deliv/s)", "fanout", 16, "rate"),
    ("1->1 no-ack 4 KiB (msg/s)", "noack", 4096, "rate"),
    ("1->1 no-ack 64 KiB (msg/s)", "noack", 65536, "rate"),
    ("latency p50 @10k/s (us)", "latency", 16, "p50_us"),
    ("latency p99 @10k/s (us)", "latency", 16, "p99_us"),
    ("latency p99.9 @10k/s (us)", "latency", 16, "p999_us"),
    ("open 1000 conns (s)", "connections", 0, "secs"),
    ("conns opened", "connections", 0, "msgs"),
    ("backlog publish 16 B (msg/s)", "backlog-publish", 16, "rate"),
    ("backlog drain 16 B (msg/s)", "backlog-drain", 16, "rate"),
]
for name, scen, size, field in lines:
    w, r = med("warren", scen, size, field), med("rabbitmq", scen, size, field)
    print(f"{name:<30} {fmt(w):>14} {fmt(r):>14} {ratio(w, r):>8}")
def mb(kb): return None if kb in (None, "") else float(kb) / 1024
print(f"\nresident memory (VmRSS, MB)")
print(f"{'state':<30} {'warren':>14} {'RabbitMQ':>14}")
print(f"{'idle (at start)':<30} {fmt(mb(idle_w)):>14} {fmt(mb(idle_r)):>14}")
for name, scen, size in [("with 1000 connections", "connections", 0), ("with the backlog", "backlog-publish", 16)]:
    w, r = mb(med("warren", scen, size, "rss_kb")), mb(med("rabbitmq", scen, size, "rss_kb"))
    print(f"{name:<30} {fmt(w):>14} {fmt(r):>14}")
w, r = mb(med("warren", "connections", 0, "rss_delta_kb")), mb(med("rabbitmq", "connections", 0, "rss_delta_kb"))
print(f"{'1000 connections minus idle':<30} {fmt(w):>14} {fmt(r):>14}")
if starts:
    print(f"\nwarren start to first accepted connection (from the shell, {len(starts)} starts): "
          f"median {statistics.median(starts):.0f} ms, min {min(starts)} ms")
print(f"\ngenerator ceiling (in-process sink, msg/s)")
print(f"{'size':<8} {'publish':>14} {'consume':>14}   warren no-ack as % of ceiling")
for size in (16, 4096, 65536):
    p, c = med("sink", "sink-publish", size), med("sink", "sink-consume", size)
    w = med("warren", "noack", size)
    pct = f"{100 * w / min(p, c):.0f}%" if w and p and c else "-"
    print(f"{size:<8} {fmt(p):>14} {fmt(c):>14}   {pct}")
if errors:
    print("\nerrors:")
    for e in errors:
        print(f"  {e.get('label')} rep {e.get('rep')}: {e['scenario']} size {e.get('size')}: {e['error']}")
PY
echo "raw results: $results" >&2
