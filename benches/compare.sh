#!/usr/bin/env bash
# Side-by-side benchmark: warren vs the reference RabbitMQ and, when given, LavinMQ:
# every scenario of issues 5 and 16, alternating brokers, N repetitions; prints medians,
# ratios warren/LavinMQ and warren/RabbitMQ and each broker's resident memory (VmRSS)
# idle, with 1000 connections and with the 1M backlog.
#
#   benches/compare.sh [--quick] [--reps N] [--no-warren] [--no-rabbit] [--no-lavinmq]
#                      [--out DIR]
#
# Environment:
#   WARREN_BIN   warren binary            (default: target/release/warren, built if missing)
#   BENCH_BIN    warren-bench binary      (default: $CARGO_TARGET_DIR/release/warren-bench, then
#                                          target/release/warren-bench, built if missing)
#   RABBIT_URL   reference RabbitMQ       (default: amqp://guest:guest@127.0.0.1:5682/%2f)
#   RABBIT_PID   its beam.smp process id  (default: found from its pid file or listening socket)
#   LAVINMQ      a lavinmq binary: adds LavinMQ as a third broker (how it was built here:
#                ../shared/notes/lavinmq.md). The script starts it on a data directory of
#                its own under --out and free loopback ports, restarts it before the memory
#                scenarios as it does warren, and stops it by PID at the end.
#
# Defaults take about 10-15 minutes on 2 cores with two brokers (581 s measured), half as
# much again with LavinMQ; --quick about 3 minutes with all three (166 s measured).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
reps=""
quick=0
use_warren=1
use_rabbit=1
use_lavin=0
lavinmq=${LAVINMQ:-}
[ -n "$lavinmq" ] && use_lavin=1
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --quick) quick=1 ;;
    --reps) reps=$2; shift ;;
    --no-warren) use_warren=0 ;;
    --no-rabbit) use_rabbit=0 ;;
    --no-lavinmq) use_lavin=0 ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if [ "$quick" = 1 ]; then
  reps=${reps:-1}
  secs=2; lat_secs=3; hold=2; backlog=200000; backlog_secs=30; sink_secs=1
  mib_msgs=1000; mib16_msgs=60
else
  reps=${reps:-3}; secs=5; lat_secs=10; hold=3; backlog=1000000; backlog_secs=60; sink_secs=3
  mib_msgs=5000; mib16_msgs=300
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

# Stops a broker this script started: by its PID, TERM then KILL after 10 s.
stop_pid() {
  [ -n "$1" ] || return 0
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}
warren_pid=""
warren_url=""
startup_ms=""
stop_warren() { stop_pid "$warren_pid"; warren_pid=""; }
lavin_pid=""
lavin_url=""
stop_lavin() { stop_pid "$lavin_pid"; lavin_pid=""; }
trap 'stop_warren; stop_lavin' EXIT
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
free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# (Re)start LavinMQ on a new data directory and free ports; sets lavin_pid, lavin_url.
start_lavin() {
  stop_lavin
  local port http
  port=$(free_port); http=$(free_port)
  rm -rf "$out/lavinmq-data"; mkdir -p "$out/lavinmq-data"
  "$lavinmq" --data-dir "$out/lavinmq-data" --bind 127.0.0.1 --amqp-port "$port" \
    --http-port "$http" --http-unix-path "$out/lavinmq-data/http.sock" >>"$out/lavinmq.log" 2>&1 &
  lavin_pid=$!
  for _ in $(seq 300); do
    answers "$port" && break
    kill -0 "$lavin_pid" 2>/dev/null || break
    sleep 0.1
  done
  if ! answers "$port"; then
    echo "LavinMQ did not answer on port $port; see $out/lavinmq.log" >&2
    stop_lavin
    return 1
  fi
  lavin_url="amqp://guest:guest@127.0.0.1:$port/%2f"
}
if [ "$use_warren" = 1 ]; then
  start_warren || use_warren=0
fi
if [ "$use_lavin" = 1 ]; then
  if [ ! -x "$lavinmq" ]; then
    echo "LAVINMQ=$lavinmq is not an executable: skipping LavinMQ" >&2
    use_lavin=0
  else
    start_lavin || use_lavin=0
  fi
fi
[ "$use_warren" = 1 ] || [ "$use_rabbit" = 1 ] || [ "$use_lavin" = 1 ] || { echo "no broker to measure" >&2; exit 1; }

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status" 2>/dev/null || true; }
sleep 1
idle_warren=""; idle_rabbit=""; idle_lavin=""
[ "$use_warren" = 1 ] && idle_warren=$(rss "$warren_pid")
[ "$use_lavin" = 1 ] && idle_lavin=$(rss "$lavin_pid")
[ "$use_rabbit" = 1 ] && [ -n "$rabbit_pid" ] && idle_rabbit=$(rss "$rabbit_pid")

# --- runs ------------------------------------------------------------------------------
# one line per scenario: extra arguments to warren-bench. Scenarios marked "fresh:" run against
# a freshly started warren (and LavinMQ), so their memory figures are not inflated by earlier
# scenarios (the shared reference RabbitMQ cannot be restarted; its "idle" is whatever it
# holds then). The 1 MiB and 16 MiB runs are bounded in messages too: an unpaced publisher
# of large bodies would otherwise queue gigabytes in a slower broker.
scenarios=(
  "--scenario publish --size 16 --seconds $secs"
  "--scenario noack --size 16 --seconds $secs"
  "--scenario ack --size 16 --seconds $secs"
  "--scenario confirm --size 16 --seconds $secs"
  "--scenario confirm --persistent --size 16 --seconds $secs"
  "--scenario confirm --persistent --consume --size 16 --seconds $secs"
  "--scenario fanout --size 16 --seconds $secs"
  "--scenario noack --size 4096 --seconds $secs"
  "--scenario noack --size 65536 --seconds $secs"
  "--scenario noack --size 1048576 --messages $mib_msgs --seconds $secs"
  "--scenario noack --size 16777216 --messages $mib16_msgs --seconds $secs"
  "--scenario latency --size 16 --seconds $lat_secs"
  "fresh: --scenario connections --connections 1000 --seconds $hold"
  "fresh: --scenario backlog --size 16 --messages $backlog --seconds $backlog_secs"
)

run_one() { # broker rep args...
  local broker=$1 rep=$2; shift 2
  local url pid
  case "$broker" in
    warren) url=$warren_url; pid=$warren_pid ;;
    lavinmq) url=$lavin_url; pid=$lavin_pid ;;
    *) url=$rabbit_url; pid=$rabbit_pid ;;
  esac
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
    # rotate which broker goes first, per scenario and per repetition
    brokers=(warren lavinmq rabbitmq)
    k=$(( (rep + i) % 3 ))
    for b in "${brokers[@]:k}" "${brokers[@]:0:k}"; do
      if [ "$b" = warren ] && [ "$use_warren" = 1 ]; then
        if [ "$fresh" = 1 ]; then start_warren && sleep 0.5 || { echo "    warren restart failed" >&2; continue; }; fi
        run_one warren "$rep" $sc
      fi
      if [ "$b" = lavinmq ] && [ "$use_lavin" = 1 ]; then
        if [ "$fresh" = 1 ]; then start_lavin && sleep 0.5 || { echo "    LavinMQ restart failed" >&2; continue; }; fi
        run_one lavinmq "$rep" $sc
      fi
      if [ "$b" = rabbitmq ] && [ "$use_rabbit" = 1 ]; then run_one rabbitmq "$rep" $sc; fi
    done
    i=$((i + 1))
  done
done
elapsed=$(( $(date +%s) - started ))

# --- summary ---------------------------------------------------------------------------
python3 - "$results" "$idle_warren" "$idle_lavin" "$idle_rabbit" "$out/startup_ms" "$elapsed" "$reps" \
  "$use_lavin" <<'PY'
import json, os, statistics, sys
path, idle_w, idle_l, idle_r, startup_file, elapsed, reps, use_l = sys.argv[1:9]
starts = [int(l) for l in open(startup_file)] if os.path.exists(startup_file) else []
rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
def med(label, scen, size, field="rate", consumed=None):
    # consumed: True for runs with a consumer meanwhile (confirm --consume reports
    # "consumed"), False for runs without, None for either.
    v = [r[field] for r in rows if r.get("label") == label and r["scenario"] == scen
         and r.get("size") == size and field in r and "error" not in r
         and (consumed is None or ("consumed" in r) == consumed)]
    return statistics.median(v) if v else None
def fmt(v, unit=""):
    if v is None: return "-"
    if abs(v) >= 100: return f"{v:,.0f}{unit}"
    return f"{v:.1f}{unit}"
def ratio(w, r):
    return f"{w / r:.2f}x" if w is not None and r else "-"
# LavinMQ's column is shown when it was asked for; RabbitMQ's always (as before).
brokers = [("warren", "warren")] + ([("lavinmq", "LavinMQ")] if use_l == "1" else []) \
    + [("rabbitmq", "RabbitMQ")]
others = brokers[1:]
def header(first):
    cols = "".join(f" {title:>14}" for _, title in brokers)
    rats = "".join(f" {'w/' + title[:6]:>9}" for _, title in others)
    return f"{first:<32}{cols}{rats}"
def row(name, values):
    cols = "".join(f" {fmt(v):>14}" for v in values)
    rats = "".join(f" {ratio(values[0], v):>9}" for v in values[1:])
    return f"{name:<32}{cols}{rats}"
errors = [r for r in rows if "error" in r]
names = " vs ".join(title for _, title in brokers)
print(f"\n{names}: medians of {reps} repetition(s), run took {elapsed}s")
print("(ratios are warren / the other: above 1x is better for rates, below 1x for latency and time)")
print(header("scenario"))
lines = [
    ("publish-only 16 B (msg/s)", "publish", 16, "rate"),
    ("1->1 no-ack 16 B (msg/s)", "noack", 16, "rate"),
    ("1->1 ack pf1000 16 B (msg/s)", "ack", 16, "rate"),
    ("confirms w1000 16 B (msg/s)", "confirm", 16, "rate"),
    ("confirms persistent (msg/s)", "confirm-persistent", 16, "rate", True),
    ("  the same, no consumer", "confirm-persistent", 16, "rate", False),
    ("fanout x10 16 B (deliv/s)", "fanout", 16, "rate"),
    ("1->1 no-ack 4 KiB (msg/s)", "noack", 4096, "rate"),
    ("1->1 no-ack 64 KiB (msg/s)", "noack", 65536, "rate"),
    ("1->1 no-ack 1 MiB (msg/s)", "noack", 1048576, "rate"),
    ("1->1 no-ack 16 MiB (msg/s)", "noack", 16777216, "rate"),
    ("latency p50 @10k/s (us)", "latency", 16, "p50_us"),
    ("latency p99 @10k/s (us)", "latency", 16, "p99_us"),
    ("latency p99.9 @10k/s (us)", "latency", 16, "p999_us"),
    ("open 1000 conns (s)", "connections", 0, "secs"),
    ("conns opened", "connections", 0, "msgs"),
    ("backlog publish 16 B (msg/s)", "backlog-publish", 16, "rate"),
    ("backlog drain 16 B (msg/s)", "backlog-drain", 16, "rate"),
]
for name, scen, size, field, *consumed in lines:
    print(row(name, [med(label, scen, size, field, *consumed) for label, _ in brokers]))
def mb(kb): return None if kb in (None, "") else float(kb) / 1024
idle = {"warren": idle_w, "lavinmq": idle_l, "rabbitmq": idle_r}
print(f"\nresident memory (VmRSS, MB)")
print(header("state"))
print(row("idle (at start)", [mb(idle[label]) for label, _ in brokers]))
for name, scen, size, field in [
    ("with 1000 connections", "connections", 0, "rss_kb"),
    ("with the backlog", "backlog-publish", 16, "rss_kb"),
    ("1000 connections minus idle", "connections", 0, "rss_delta_kb"),
]:
    print(row(name, [mb(med(label, scen, size, field)) for label, _ in brokers]))
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
