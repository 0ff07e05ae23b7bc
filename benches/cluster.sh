#!/usr/bin/env bash
# Quorum queue throughput on three local warren nodes (issue 17, docs/clustering.md 5.4),
# beside one warren node (classic durable queue and single-node "quorum" queue) and the
# reference RabbitMQ's quorum queue on one node. Interleaved runs, medians of --reps.
#
#   benches/cluster.sh [--reps N] [--secs S] [--sizes 16,1024] [--no-rabbit] [--out DIR]
#                      [--memory-only] [--no-memory]
#
# What it starts (and stops by PID at the end; data dirs and the cookie live in a
# mktemp -d removed by a trap):
#   rabbit@n1..n3  --bind 127.0.0.N --port 2721N, peers on 127.0.0.N:2710N, management API
#                  on 127.0.0.N:2715N (to read each quorum queue's leader), no Prometheus
#   single node    --bind 127.0.0.1 --port 27220, no --peers, management on 27250
#   RabbitMQ       ../shared/tools/reference-rabbitmq start (127.0.0.1:5682), if it works;
#                  left running (the script did not own it before).
#
# Scenarios (warren-bench, --seconds S each, persistent messages, confirms window 1000):
#   confirm-leader    1 publisher with confirms on the node that declared (leads) the queue
#   confirm-follower  the same publisher on a follower (n2), queue declared on n1
#   ack               1 -> 1, consumer acks (prefetch 1000, multiple ack every 100), the
#                     publisher with confirms: queue declared on n1 (leader), publisher on
#                     n2, consumer on n3 (both followers)
# Single-node brokers run confirm-leader and ack with everything on the one node.
#
# Then idle cost: RSS (ps -o rss) and CPU of each node idle, and 10 s after 100 quorum
# queues were declared (34/33/33 through each node's HTTP API, so each node leads a third),
# the same for the single node with 100 x-queue-type=quorum queues.
#
# Environment: WARREN_BIN (default target/release/warren), BENCH_BIN (target/release/
# warren-bench), RABBIT_URL (amqp://guest:guest@127.0.0.1:5682/%2f).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
reps=3
secs=4
sizes=16,1024
use_rabbit=1
out=""
do_bench=1
do_memory=1
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift ;;
    --secs) secs=$2; shift ;;
    --sizes) sizes=$2; shift ;;
    --no-rabbit) use_rabbit=0 ;;
    --out) out=$2; shift ;;
    --memory-only) do_bench=0 ;;
    --no-memory) do_memory=0 ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

tdir=${CARGO_TARGET_DIR:-$root/target}
warren=${WARREN_BIN:-$tdir/release/warren}
bench=${BENCH_BIN:-$tdir/release/warren-bench}
for b in "$warren" "$bench"; do
  [ -x "$b" ] || { echo "missing $b: cargo build --release; cargo build --release -p warren-tools" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "python3 is needed for the summary" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/warren-cluster-bench.XXXXXX")
out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/warren-cluster-bench-out.XXXXXX")}
mkdir -p "$out"
results=$out/results.jsonl
leaders=$out/leaders.txt
memory=$out/memory.txt
: >"$results"; : >"$leaders"; : >"$memory"

pids=()
stop_pid() { # TERM, then KILL after 10 s (said on stderr: a broker should stop by then)
  local t0=$SECONDS
  kill "$1" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  if kill -9 "$1" 2>/dev/null; then echo "pid $1 still running 10 s after SIGTERM: killed" >&2; fi
  wait "$1" 2>/dev/null || true
  [ $((SECONDS - t0)) -lt 3 ] || echo "pid $1 took $((SECONDS - t0)) s to stop" >&2
}
cleanup() {
  for p in "${pids[@]}"; do stop_pid "$p"; done
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- brokers ---------------------------------------------------------------------------
( umask 077; head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/cookie" )
chmod 600 "$tmp/cookie"
peers='rabbit@n1=127.0.0.1:27101,rabbit@n2=127.0.0.2:27102,rabbit@n3=127.0.0.3:27103'

node_pid=()
for n in 1 2 3; do
  mkdir -p "$tmp/n$n"
  "$warren" --node-name "rabbit@n$n" --peers "$peers" --cluster-cookie-file "$tmp/cookie" \
    --data-dir "$tmp/n$n" --bind "127.0.0.$n" --port "2721$n" \
    --management-port "2715$n" --prometheus-port 0 >"$tmp/n$n.log" 2>&1 &
  node_pid[$n]=$!
  pids+=("$!")
done
mkdir -p "$tmp/single"
"$warren" --data-dir "$tmp/single" --bind 127.0.0.1 --port 27220 \
  --management-port 27250 --prometheus-port 0 >"$tmp/single.log" 2>&1 &
single_pid=$!
pids+=("$single_pid")

wait_ready() { # log pid
  for _ in $(seq 600); do
    grep -q ' ready on amqp://' "$1" 2>/dev/null && return 0
    kill -0 "$2" 2>/dev/null || { echo "broker exited; its log:" >&2; cat "$1" >&2; exit 1; }
    sleep 0.1
  done
  echo "no ready line in 60 s; log:" >&2; cat "$1" >&2; exit 1
}
t0=$(date +%s.%N)
for n in 1 2 3; do wait_ready "$tmp/n$n.log" "${node_pid[$n]}"; done
echo "cluster ready in $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s" >&2
wait_ready "$tmp/single.log" "$single_pid"

url() { echo "amqp://guest:guest@127.0.0.$1:2721$1/%2f"; }
single=amqp://guest:guest@127.0.0.1:27220/%2f
api() { echo "http://127.0.0.$1:2715$1"; }

rabbit_url=${RABBIT_URL:-amqp://guest:guest@127.0.0.1:5682/%2f}
answers() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
if [ "$use_rabbit" = 1 ] && [ "$do_bench" = 1 ]; then
  if ! answers 5682; then
    ref=/work/shared/tools/reference-rabbitmq
    [ -x "$ref" ] || ref=$root/../shared/tools/reference-rabbitmq
    [ -x "$ref" ] && timeout 300 "$ref" start >&2 || true
  fi
  answers 5682 || { echo "reference RabbitMQ does not answer on 5682: skipping it" >&2; use_rabbit=0; }
fi

# --- idle cost -------------------------------------------------------------------------
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { ps -o rss= -p "$1" | tr -d ' '; }
# idle_sample label pid...: RSS now and CPU % over 10 s
idle_sample() {
  local label=$1; shift
  local before=() p i=0 hz
  hz=$(getconf CLK_TCK)
  for p in "$@"; do before+=("$(cpu_ticks "$p")"); done
  sleep 10
  for p in "$@"; do
    local cpu
    cpu=$(python3 -c "print(f'{($(cpu_ticks "$p")-${before[$i]})/$hz/10*100:.1f}')")
    echo "$label pid=$p rss_kb=$(rss_kb "$p") cpu_pct=$cpu" | tee -a "$memory" >&2
    i=$((i + 1))
  done
}
declare_http() { # api-base name
  curl -sf -u guest:guest -X PUT -H 'content-type: application/json' \
    -d '{"durable":true,"auto_delete":false,"arguments":{"x-queue-type":"quorum"}}' \
    "$1/api/queues/%2F/$2" >/dev/null
}
delete_http() { curl -sf -u guest:guest -X DELETE "$1/api/queues/%2F/$2" >/dev/null || true; }

if [ "$do_memory" = 1 ]; then
  sleep 3
  idle_sample "cluster-idle-0q" "${node_pid[1]}" "${node_pid[2]}" "${node_pid[3]}"
  idle_sample "single-idle-0q" "$single_pid"
  t0=$(date +%s.%N)
  for i in $(seq 0 99); do
    n=$((i % 3 + 1))
    declare_http "$(api "$n")" "idle-q$i" || echo "declare idle-q$i on n$n failed" >&2
  done
  echo "100 quorum queues declared in $(python3 -c "print(f'{$(date +%s.%N)-$t0:.1f}')") s" | tee -a "$memory" >&2
  for i in $(seq 0 99); do declare_http http://127.0.0.1:27250 "idle-q$i" || true; done
  sleep 5
  curl -sf -u guest:guest "$(api 1)/api/queues/%2F" |
    python3 -c 'import json,sys,collections; q=[x for x in json.load(sys.stdin) if x["name"].startswith("idle-q")]; print("cluster: %d idle quorum queues, leaders %s" % (len(q), dict(collections.Counter(x.get("leader") for x in q))))' |
    tee -a "$memory" >&2
  idle_sample "cluster-idle-100q" "${node_pid[1]}" "${node_pid[2]}" "${node_pid[3]}"
  idle_sample "single-idle-100q" "$single_pid"
  for i in $(seq 0 99); do
    delete_http "$(api $((i % 3 + 1)))" "idle-q$i"
    delete_http http://127.0.0.1:27250 "idle-q$i"
  done
fi
[ "$do_bench" = 1 ] || { cat "$memory"; exit 0; }

# --- throughput ------------------------------------------------------------------------
# Which node leads a quorum queue: declare a probe through n1's API, read its `leader`,
# delete it. The runs declare their queue on that node (L), publish on a follower (F1)
# for confirm-follower and ack, and consume on the other follower (F2) for ack.
declare_http "$(api 1)" probe-leader || { echo "cannot declare a quorum queue through the API" >&2; exit 1; }
leader=$(curl -sf -u guest:guest "$(api 1)/api/queues/%2F/probe-leader" |
  python3 -c 'import json,sys; print(json.load(sys.stdin).get("leader",""))')
delete_http "$(api 1)" probe-leader
case "$leader" in
  rabbit@n1) L=1; F1=2; F2=3 ;;
  rabbit@n2) L=2; F1=3; F2=1 ;;
  rabbit@n3) L=3; F1=1; F2=2 ;;
  *) echo "probe queue's leader is '$leader', not one of rabbit@n1..n3" >&2; exit 1 ;;
esac
echo "quorum queue leader: $leader (declare on n$L, follower publisher on n$F1, consumer on n$F2)" |
  tee "$leaders" >&2
nL=$(url $L); nF1=$(url $F1); nF2=$(url $F2)

# While a cluster run goes, read its queue's leader from n1's API once, 1.5 s in.
watch_leader() { # tag
  sleep 1.5
  curl -sf -u guest:guest "$(api 1)/api/queues/%2F" 2>/dev/null |
    python3 -c 'import json,sys; q=[x for x in json.load(sys.stdin) if x["name"].startswith("warren-bench.")]; print(sys.argv[1], " ".join("%s leader=%s members=%s" % (x["name"].split(".")[-1], x.get("leader"), ",".join(x.get("members") or [])) for x in q) or "no queue seen")' "$1" \
    >>"$leaders" 2>/dev/null || echo "$1 api read failed" >>"$leaders"
}

# run broker scenario size rep
run() {
  local broker=$1 sc=$2 size=$3 rep=$4 args=()
  case "$sc" in
    confirm-leader|confirm-follower) args=(--scenario confirm --persistent --window 1000) ;;
    ack) args=(--scenario ack --persistent --confirm --window 1000 --prefetch 1000 --ack-every 100) ;;
  esac
  case "$broker:$sc" in
    cluster:confirm-leader) args+=(--url "$nL" --declare-url "$nL" --queue-type quorum) ;;
    cluster:confirm-follower) args+=(--url "$nF1" --declare-url "$nL" --queue-type quorum) ;;
    cluster:ack) args+=(--url "$nF1" --declare-url "$nL" --consumer-url "$nF2" --queue-type quorum) ;;
    single-classic:*) args+=(--url "$single") ;;
    single-quorum:*) args+=(--url "$single" --queue-type quorum) ;;
    rabbit-quorum:*) args+=(--url "$rabbit_url" --queue-type quorum) ;;
  esac
  local w=""
  if [ "$broker" = cluster ]; then watch_leader "$sc/$size/rep$rep" & w=$!; fi
  "$bench" "${args[@]}" --size "$size" --seconds "$secs" --json \
    --label "$broker|$sc|$rep" >>"$results" 2>>"$out/bench.err" ||
    echo "run $broker $sc $size rep $rep failed (see $out/bench.err)" >&2
  [ -z "$w" ] || wait "$w" 2>/dev/null || true
}

# RSS of every warren every 0.5 s while the runs go (pid rss_kb per line).
( while :; do
    for p in "${node_pid[1]}" "${node_pid[2]}" "${node_pid[3]}" "$single_pid"; do
      echo "$p $(rss_kb "$p")"
    done
    sleep 0.5
  done ) >"$out/rss-samples.txt" 2>/dev/null &
sampler=$!
pids+=("$sampler")
brokers=(cluster single-classic single-quorum)
[ "$use_rabbit" = 1 ] && brokers+=(rabbit-quorum)
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$out/load.txt" >&2
IFS=, read -r -a size_list <<<"$sizes"
for rep in $(seq 1 "$reps"); do
  # rotate which broker goes first
  rot=("${brokers[@]:$(((rep - 1) % ${#brokers[@]}))}" "${brokers[@]:0:$(((rep - 1) % ${#brokers[@]}))}")
  for sc in confirm-leader confirm-follower ack; do
    for size in "${size_list[@]}"; do
      for b in "${rot[@]}"; do
        [ "$sc" = confirm-follower ] && [ "$b" != cluster ] && continue
        run "$b" "$sc" "$size" "$rep"
      done
    done
  done
  echo "rep $rep done; load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$out/load.txt" >&2
done
kill "$sampler" 2>/dev/null || true; wait "$sampler" 2>/dev/null || true
hwm_kb() { awk '/^VmHWM:/ {print $2}' "/proc/$1/status"; }
after() { # name pid
  local peak
  peak=$(awk -v p="$2" '$1 == p && $2 > m {m = $2} END {print m + 0}' "$out/rss-samples.txt")
  echo "$1 rss_kb after runs: $(rss_kb "$2"), highest sampled during runs: $peak, VmHWM: $(hwm_kb "$2")" |
    tee -a "$memory" >&2
}
for n in 1 2 3; do after "n$n" "${node_pid[$n]}"; done
after single "$single_pid"
sleep 10
for n in 1 2 3; do echo "n$n rss_kb 10 s later: $(rss_kb "${node_pid[$n]}")" | tee -a "$memory" >&2; done
echo "single rss_kb 10 s later: $(rss_kb "$single_pid")" | tee -a "$memory" >&2

# --- summary ---------------------------------------------------------------------------
python3 - "$results" <<'EOF'
import json, sys, statistics, collections
runs = collections.defaultdict(list)
for line in open(sys.argv[1]):
    r = json.loads(line)
    broker, sc, _ = r["label"].split("|")
    if "rate" in r:
        runs[(broker, sc, r["size"])].append(r["rate"])
def med(b, sc, size):
    v = runs.get((b, sc, size))
    return statistics.median(v) if v else None
def f(x): return "-" if x is None else f"{x:,.0f}"
def ratio(a, b): return "-" if a is None or not b else f"{a / b:.2f}"
sizes = sorted({k[2] for k in runs})
print()
print("msg/s, median of %d; cluster = 3 warren nodes, quorum queue" % max((len(v) for v in runs.values()), default=0))
hdr = ["scenario", "size", "warren 3 nodes", "warren 1 classic", "warren 1 quorum", "RabbitMQ quorum", "3n/1c", "3n/1q", "3n/RMQ"]
print("| " + " | ".join(hdr) + " |")
print("|" + "---|" * len(hdr))
for sc, single_sc in [("confirm-leader", "confirm-leader"), ("confirm-follower", "confirm-leader"), ("ack", "ack")]:
    for size in sizes:
        c = med("cluster", sc, size)
        sc1 = med("single-classic", single_sc, size)
        sq1 = med("single-quorum", single_sc, size)
        rq = med("rabbit-quorum", single_sc, size)
        print(f"| {sc} | {size} | {f(c)} | {f(sc1)} | {f(sq1)} | {f(rq)} | {ratio(c, sc1)} | {ratio(c, sq1)} | {ratio(c, rq)} |")
print()
print("all runs (msg/s):")
for k in sorted(runs):
    print("  %-16s %-17s %5d  %s" % (k[0], k[1], k[2], " ".join(f"{x:,.0f}" for x in runs[k])))
EOF
echo
echo "leaders seen during cluster runs:"; sort "$leaders" | uniq -c | sed 's/^/  /'
echo "idle cost:"; sed 's/^/  /' "$memory"
echo "load: $(tr '\n' ';' <"$out/load.txt")"
echo "raw results: $out"
