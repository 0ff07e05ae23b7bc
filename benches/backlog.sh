#!/usr/bin/env bash
# Large-backlog check (issue 6), for warren and the reference RabbitMQ:
#   fill     N persistent messages of SIZE bytes (publisher confirms) into a durable queue
#            -> publish rate, peak RSS during the fill (VmHWM), RSS after, data on disk
#   restart  graceful stop, start again -> time from the new process's start until a client's
#            passive queue.declare reports the full count; peak RSS of the new process
#   drain    one consumer, manual acks -> rate, count and order check, disk before/after
#
#   benches/backlog.sh [--messages N] [--size BYTES] [--budget BYTES] [--no-warren]
#                      [--no-rabbit] [--out DIR] [--log LEVEL] [--keep-data] [--phase-secs S]
#
#   --messages N     default 5000000
#   --size BYTES     body size, default 1024
#   --budget BYTES   passed to warren as --queue-memory (default: warren's own default)
#   --log LEVEL      warren's --log (default info: the recovery lines land in DIR/warren.log)
#   --keep-data      leave warren's data directory in DIR (deleted by default)
#   --phase-secs S   bound of each phase (fill, recovery, drain); default N/2000 + 300. A fill
#                    cut short by it goes on with what was confirmed (the table says how many)
#
# Environment: WARREN_BIN, BENCH_BIN (as in compare.sh), RABBIT_URL (default
# amqp://guest:guest@127.0.0.1:5682/%2f), REFERENCE (default ../shared/tools/reference-rabbitmq).
# RabbitMQ is restarted through that tool (once before the fill, so its VmHWM covers this run
# only, and once for the recovery figure) and left running; it is skipped when another
# warren-bench is running against its port.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
messages=5000000
size=1024
budget=""
use_warren=1
use_rabbit=1
out=""
log=info
keep=0
phase_secs=""
while [ $# -gt 0 ]; do
  case "$1" in
    --messages) messages=$2; shift ;;
    --size) size=$2; shift ;;
    --budget) budget=$2; shift ;;
    --no-warren) use_warren=0 ;;
    --no-rabbit) use_rabbit=0 ;;
    --out) out=$2; shift ;;
    --log) log=$2; shift ;;
    --keep-data) keep=1 ;;
    --phase-secs) phase_secs=$2; shift ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/warren-backlog.XXXXXX")}
mkdir -p "$out"
out=$(cd "$out" && pwd)
results=$out/results.jsonl
touch "$results"
# generous bounds: ~5x the slowest rate seen (RabbitMQ, ~10k persistent msg/s) plus slack
phase_secs=${phase_secs:-$(( messages / 2000 + 300 ))}

tdir=${CARGO_TARGET_DIR:-$root/target}
pick() { for f in "$@"; do [ -x "$f" ] && { echo "$f"; return; }; done; echo "$1"; }
bench=${BENCH_BIN:-$(pick "$tdir/release/warren-bench" "$root/target/release/warren-bench")}
warren=${WARREN_BIN:-$(pick "$tdir/release/warren" "$root/target/release/warren")}
for b in "$bench" $([ "$use_warren" = 1 ] && echo "$warren"); do
  [ -x "$b" ] || { echo "missing $b: cargo build --release && cargo build --release -p warren-tools first" >&2; exit 1; }
done
rabbit_url=${RABBIT_URL:-amqp://guest:guest@127.0.0.1:5682/%2f}
rabbit_port=$(echo "$rabbit_url" | sed -E 's#^amqps?://([^@/]*@)?[^:/]*:?([0-9]*).*#\2#')
rabbit_port=${rabbit_port:-5672}
ref=${REFERENCE:-$root/../shared/tools/reference-rabbitmq}
[ -x "$ref" ] || ref=/work/shared/tools/reference-rabbitmq

now_ms() { echo $(( $(date +%s%N) / 1000000 )); }
secs_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN {printf "%.3f", (b - a) / 1000}'; }
ms_diff() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", (b - a) / 1000}'; }
status_kb() { awk -v f="$2:" '$1 == f {print $2}' "/proc/$1/status" 2>/dev/null || true; }
du_b() { du -sb "$1" 2>/dev/null | cut -f1 || true; }
answers() { timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
# one JSON object per line: key value pairs, numbers unquoted when they look like numbers
emit() {
  local s="{" sep="" k v
  while [ $# -ge 2 ]; do
    k=$1 v=$2; shift 2
    if [[ "$v" =~ ^-?[0-9]+(\.[0-9]+)?$ ]]; then s+="$sep\"$k\":$v"; else s+="$sep\"$k\":\"$v\""; fi
    sep=","
  done
  echo "$s}" >>"$results"
}
# run warren-bench, append its JSON lines tagged with label/messages; returns its status
bench_run() { # label timeout args...
  local label=$1 t=$2; shift 2
  local rc=0
  echo "  [$label] warren-bench $*" >&2
  timeout "$t" "$bench" --json --label "$label" "$@" 2>>"$out/bench.stderr" >"$out/last.json" || rc=$?
  sed "s/^{/{\"messages\":$messages,/" "$out/last.json" >>"$results"
  cat "$out/last.json" >&2
  return $rc
}
json_field() { # field  (from the last bench output)
  python3 -c 'import json,sys
for l in open(sys.argv[1]):
    l=l.strip()
    if l.startswith("{"):
        v=json.loads(l).get(sys.argv[2])
        if v is not None: print(v)' "$out/last.json" "$1" | tail -1
}

# --- warren --------------------------------------------------------------------------------
wpid=""
wport=""
stop_secs=""
stop_warren() { # graceful: SIGTERM, up to 300 s, then SIGKILL; sets stop_secs
  [ -n "$wpid" ] || return 0
  local t0 i
  t0=$(now_ms)
  kill "$wpid" 2>/dev/null || true
  for i in $(seq 3000); do kill -0 "$wpid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$wpid" 2>/dev/null; then
    echo "  warren did not stop within 300 s: SIGKILL" >&2
    kill -9 "$wpid" 2>/dev/null || true
  fi
  wait "$wpid" 2>/dev/null || true
  wpid=""
  stop_secs=$(secs_since "$t0")
}
cleanup() {
  [ -n "$wpid" ] && stop_warren
  if [ "$keep" = 0 ] && [ -d "$out/warren-data" ]; then rm -rf "$out/warren-data"; fi
}
trap cleanup EXIT
start_warren() { # [port]; sets wpid (does not wait)
  local args=(--port "${1:-0}" --management-port 0 --prometheus-port 0 --bind 127.0.0.1 --data-dir "$out/warren-data" --log "$log")
  [ -n "$budget" ] && args+=(--queue-memory "$budget")
  echo "--- start $(date -u +%FT%TZ): $warren ${args[*]}" >>"$out/warren.log"
  "$warren" "${args[@]}" >"$out/warren.stdout" 2>>"$out/warren.log" &
  wpid=$!
}
wait_ready_line() { # sets wport; bounded by $1 seconds
  local i
  for i in $(seq $(( $1 * 20 ))); do
    wport=$(sed -nE 's#^warren .* ready on amqp://[^:]+:([0-9]+).*#\1#p' "$out/warren.stdout" | head -1)
    [ -n "$wport" ] && return 0
    kill -0 "$wpid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

run_warren() {
  echo "warren: $messages x $size B, queue memory budget ${budget:-default}" >&2
  rm -rf "$out/warren-data"
  start_warren 0
  wait_ready_line 60 || { echo "warren did not start; see $out/warren.log" >&2; return 1; }
  local url="amqp://guest:guest@127.0.0.1:$wport/%2f"
  emit label warren scenario start messages "$messages" rss_kb "$(status_kb "$wpid" VmRSS)"
  bench_run warren $(( phase_secs + 120 )) --url "$url" --scenario fill --messages "$messages" \
    --size "$size" --seconds "$phase_secs" --broker-pid "$wpid" || echo "  fill failed" >&2
  local queued
  queued=$(json_field queued); queued=${queued:-$messages}
  sleep 1
  emit label warren scenario disk phase after-fill messages "$messages" \
    bytes "$(du_b "$out/warren-data")" msgs_bytes "$(du_b "$out/warren-data/msgs")" \
    pages_bytes "$(du_b "$out/warren-data/pages")" rss_kb "$(status_kb "$wpid" VmRSS)" \
    hwm_kb "$(status_kb "$wpid" VmHWM)"
  local t0 rc=0
  stop_warren
  # same port again, so the poller can start with the process
  t0=$(now_ms)
  start_warren "$wport"
  bench_run warren $(( phase_secs + 120 )) --url "$url" --scenario recover --messages "$queued" \
    --seconds "$phase_secs" --broker-pid "$wpid" || rc=$?
  local ready hwm rss
  ready=$(json_field ready_unix_ms)
  hwm=$(status_kb "$wpid" VmHWM); rss=$(status_kb "$wpid" VmRSS)
  if [ "$rc" != 0 ] || [ -z "$ready" ]; then
    echo "  warren did not come back with its $queued messages; see $out/warren.log" >&2
    emit label warren scenario restart messages "$messages" stop_secs "$stop_secs" error "no recovery" \
      hwm_kb "$hwm" rss_kb "$rss"
    return 1
  fi
  emit label warren scenario restart messages "$messages" stop_secs "$stop_secs" \
    recovery_secs "$(ms_diff "$t0" "$ready")" hwm_kb "$hwm" rss_kb "$rss"
  emit label warren scenario disk phase before-drain messages "$messages" bytes "$(du_b "$out/warren-data")" \
    msgs_bytes "$(du_b "$out/warren-data/msgs")" pages_bytes "$(du_b "$out/warren-data/pages")"
  bench_run warren $(( phase_secs + 120 )) --url "$url" --scenario drain --size "$size" \
    --seconds "$phase_secs" --broker-pid "$wpid" || echo "  drain failed or found a problem" >&2
  sleep 2
  emit label warren scenario disk phase after-drain messages "$messages" bytes "$(du_b "$out/warren-data")" \
    msgs_bytes "$(du_b "$out/warren-data/msgs")" pages_bytes "$(du_b "$out/warren-data/pages")" \
    rss_kb "$(status_kb "$wpid" VmRSS)"
  stop_warren
  grep -E "recovered|WARN|ERROR|page" "$out/warren.log" | sed 's/\x1b\[[0-9;]*m//g' | tail -20 >&2 || true
}

# --- RabbitMQ ------------------------------------------------------------------------------
rabbit_pid() {
  local pid="" pidfile=${TMPDIR:-/tmp}/reference-rabbitmq-$rabbit_port/pid
  [ -r "$pidfile" ] && pid=$(tr -dc 0-9 <"$pidfile")
  if [ -z "$pid" ] || ! grep -q beam "/proc/$pid/cmdline" 2>/dev/null; then
    pid=$(ss -ltnpH "sport = :$rabbit_port" 2>/dev/null | grep -o 'pid=[0-9]*' | head -1 | cut -d= -f2 || true)
  fi
  echo "$pid"
}
rabbit_busy() { # another warren-bench aimed at the reference's port?
  ps -eo pid=,args= | awk -v port=":$rabbit_port/" '$2 ~ /warren-bench$/ && index($0, port) {print}' || true
}
rabbit_stop() { # via the tool; then wait (bounded) for the process to exit
  local pid=$1 i
  timeout 300 "$ref" stop >&2 || true
  if [ -n "$pid" ]; then
    for i in $(seq 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
  fi
}
rabbit_data() { echo "${TMPDIR:-/tmp}/reference-rabbitmq-$rabbit_port/mnesia"; }

run_rabbit() {
  echo "RabbitMQ: $messages x $size B" >&2
  local busy
  busy=$(rabbit_busy)
  if [ -n "$busy" ]; then
    echo "another warren-bench is using the reference RabbitMQ; skipping it:" >&2
    echo "$busy" >&2
    return 1
  fi
  # restart first, so that VmHWM covers this run only
  local pid
  pid=$(rabbit_pid)
  if answers "$rabbit_port"; then rabbit_stop "$pid"; fi
  REFERENCE_PORT=$rabbit_port timeout 600 "$ref" start >&2 || { echo "RabbitMQ does not start" >&2; return 1; }
  pid=$(rabbit_pid)
  [ -n "$pid" ] || { echo "cannot find the RabbitMQ process" >&2; return 1; }
  # a leftover from an interrupted run would be counted in
  timeout 600 "$bench" --url "$rabbit_url" --scenario drain --seconds 600 >/dev/null 2>&1 || true
  emit label rabbitmq scenario start messages "$messages" rss_kb "$(status_kb "$pid" VmRSS)"
  bench_run rabbitmq $(( phase_secs + 120 )) --url "$rabbit_url" --scenario fill --messages "$messages" \
    --size "$size" --seconds "$phase_secs" --broker-pid "$pid" || echo "  fill failed" >&2
  local queued
  queued=$(json_field queued); queued=${queued:-$messages}
  sleep 1
  local data
  data=$(rabbit_data)
  emit label rabbitmq scenario disk phase after-fill messages "$messages" bytes "$(du_b "$data")" \
    rss_kb "$(status_kb "$pid" VmRSS)" hwm_kb "$(status_kb "$pid" VmHWM)"
  local t0 rc=0
  t0=$(now_ms)
  rabbit_stop "$pid"
  stop_secs=$(secs_since "$t0")
  t0=$(now_ms)
  (REFERENCE_PORT=$rabbit_port timeout 900 "$ref" start >"$out/rabbit-start.log" 2>&1 || true) &
  local starter=$!
  bench_run rabbitmq $(( phase_secs + 120 )) --url "$rabbit_url" --scenario recover --messages "$queued" \
    --seconds "$phase_secs" || rc=$?
  local ready
  ready=$(json_field ready_unix_ms)
  wait "$starter" || true
  pid=$(rabbit_pid)
  local hwm rss
  hwm=$(status_kb "$pid" VmHWM); rss=$(status_kb "$pid" VmRSS)
  if [ "$rc" != 0 ] || [ -z "$ready" ]; then
    echo "  RabbitMQ did not come back with its $queued messages" >&2
    emit label rabbitmq scenario restart messages "$messages" stop_secs "$stop_secs" error "no recovery"
    return 1
  fi
  emit label rabbitmq scenario restart messages "$messages" stop_secs "$stop_secs" \
    recovery_secs "$(ms_diff "$t0" "$ready")" hwm_kb "$hwm" rss_kb "$rss"
  emit label rabbitmq scenario disk phase before-drain messages "$messages" bytes "$(du_b "$data")"
  bench_run rabbitmq $(( phase_secs + 120 )) --url "$rabbit_url" --scenario drain --size "$size" \
    --seconds "$phase_secs" --broker-pid "$pid" || echo "  drain failed or found a problem" >&2
  sleep 2
  emit label rabbitmq scenario disk phase after-drain messages "$messages" bytes "$(du_b "$data")" \
    rss_kb "$(status_kb "$pid" VmRSS)"
}

started=$(date +%s)
[ "$use_warren" = 1 ] && { run_warren || true; }
[ "$use_rabbit" = 1 ] && { run_rabbit || true; }
elapsed=$(( $(date +%s) - started ))

# --- summary -------------------------------------------------------------------------------
python3 - "$results" "$messages" "$size" "$elapsed" "${budget:-default}" <<'PY'
import json, sys
path, n, size, elapsed, budget = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
rows = [r for r in rows if r.get("messages") == n]
def get(label, scen, field, phase=None):
    v = None
    for r in rows:
        if r.get("label") == label and r.get("scenario") == scen and (phase is None or r.get("phase") == phase):
            if field in r and r[field] != "":
                v = r[field]   # the last one of this run
    return v
def mb(kb): return None if kb in (None, "") else f"{float(kb) / 1024:,.0f}"
def gb(b): return None if b in (None, "") else f"{float(b) / 1e9:.2f}"
def num(v, d=0): return None if v is None else f"{float(v):,.{d}f}"
labels = [l for l in ("warren", "rabbitmq") if any(r.get("label") == l for r in rows)]
lines = [
    ("fill rate (msg/s)", lambda l: num(get(l, "fill", "rate"))),
    ("fill time (s)", lambda l: num(get(l, "fill", "secs"), 1)),
    ("queued after fill", lambda l: num(get(l, "fill", "queued"))),
    ("peak RSS during fill (MiB)", lambda l: mb(get(l, "fill", "hwm_kb"))),
    ("RSS after fill (MiB)", lambda l: mb(get(l, "fill", "rss_kb"))),
    ("disk after fill (GB)", lambda l: gb(get(l, "disk", "bytes", "after-fill"))),
    ("graceful stop (s)", lambda l: num(get(l, "restart", "stop_secs"), 1)),
    ("start -> full count (s)", lambda l: num(get(l, "restart", "recovery_secs"), 2)),
    ("peak RSS of recovery (MiB)", lambda l: mb(get(l, "restart", "hwm_kb"))),
    ("RSS after recovery (MiB)", lambda l: mb(get(l, "restart", "rss_kb"))),
    ("drain rate (msg/s)", lambda l: num(get(l, "drain", "rate"))),
    ("drained / held", lambda l: None if get(l, "drain", "held") is None else
        f"{get(l, 'drain', 'msgs')}/{get(l, 'drain', 'held')}"),
    ("order breaks", lambda l: num(get(l, "drain", "seq_breaks"))),
    ("peak RSS while draining (MiB)", lambda l: mb(get(l, "drain", "rss_peak_sampled_kb"))),
    ("disk before drain (GB)", lambda l: gb(get(l, "disk", "bytes", "before-drain"))),
    ("disk after drain (GB)", lambda l: gb(get(l, "disk", "bytes", "after-drain"))),
]
print(f"\nlarge backlog: {n:,} x {size} B persistent, warren queue memory {budget}; run took {elapsed}s")
print(f"{'':<30}" + "".join(f"{l:>18}" for l in labels))
for name, f in lines:
    print(f"{name:<30}" + "".join(f"{(f(l) or '-'):>18}" for l in labels))
problems = [r for r in rows if "problem" in r or "error" in r]
for r in problems:
    print(f"PROBLEM {r.get('label')} {r.get('scenario')}: {r.get('problem') or r.get('error')}")
PY
echo "raw results: $results (warren log: $out/warren.log)" >&2
