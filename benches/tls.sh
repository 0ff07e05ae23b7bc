#!/usr/bin/env bash
# TLS beside plain, side by side in one run: one warren with both listeners, warren-bench
# against amqp:// and amqps:// alternately (which goes first alternates per scenario and
# repetition), N repetitions; prints medians and the ratio TLS/plain for publish-only
# 16 B, 1->1 no-ack 16 B and 1->1 no-ack 4 KiB. Certificates are made fresh by
# interop/tls-certs.sh (openssl).
#
#   benches/tls.sh [--reps N] [--seconds S] [--out DIR]
#                  [--rabbit-plain URL --rabbit-tls URL --rabbit-ca FILE]
#
# The --rabbit-* options add a RabbitMQ with a TLS listener (its CA certificate) to the
# same run, for its own TLS/plain ratio.
# Environment: WARREN_BIN, BENCH_BIN as in compare.sh.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
reps=3
secs=5
out=""
rabbit_plain=""; rabbit_tls=""; rabbit_ca=""
while [ $# -gt 0 ]; do
  case "$1" in
    --reps) reps=$2; shift ;;
    --seconds) secs=$2; shift ;;
    --out) out=$2; shift ;;
    --rabbit-plain) rabbit_plain=$2; shift ;;
    --rabbit-tls) rabbit_tls=$2; shift ;;
    --rabbit-ca) rabbit_ca=$2; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
out=${out:-$(mktemp -d "${TMPDIR:-/tmp}/warren-tls-bench.XXXXXX")}
mkdir -p "$out"
results=$out/results.jsonl
: >"$results"

tdir=${CARGO_TARGET_DIR:-$root/target}
bench=${BENCH_BIN:-$tdir/release/warren-bench}
warren=${WARREN_BIN:-$tdir/release/warren}
if [ ! -x "$bench" ] || [ ! -x "$warren" ]; then
  echo "building warren and warren-bench (release)..." >&2
  (cd "$root" && cargo build --release --bin warren >&2 && cargo build --release -p warren-tools --bin warren-bench >&2)
fi

certs=$out/certs
bash "$root/interop/tls-certs.sh" "$certs" >/dev/null
warren_pid=""
stop_warren() {
  if [ -n "$warren_pid" ]; then
    kill "$warren_pid" 2>/dev/null || true
    wait "$warren_pid" 2>/dev/null || true
    warren_pid=""
  fi
}
trap stop_warren EXIT
"$warren" --port 0 --management-port 0 --prometheus-port 0 --bind 127.0.0.1 --data-dir "$out/warren-data" \
  --tls-port 0 --tls-cert "$certs/server.pem" --tls-key "$certs/server.key" \
  >"$out/warren.stdout" 2>"$out/warren.stderr" &
warren_pid=$!
line=""
for _ in $(seq 300); do
  line=$(grep -m1 'ready on amqp://' "$out/warren.stdout" || true)
  [ -n "$line" ] && break
  sleep 0.1
done
[ -n "$line" ] || { echo "warren did not start; see $out/warren.stderr" >&2; exit 1; }
plain_port=$(sed -nE 's#.*ready on amqp://[^:]+:([0-9]+).*#\1#p' <<<"$line")
tls_port=$(sed -nE 's#.* and amqps://[^:]+:([0-9]+).*#\1#p' <<<"$line")

# label url ca
targets=("warren-plain amqp://guest:guest@127.0.0.1:$plain_port/%2f -"
         "warren-tls amqps://guest:guest@127.0.0.1:$tls_port/%2f $certs/ca.pem")
if [ -n "$rabbit_tls" ]; then
  targets+=("rabbitmq-plain ${rabbit_plain:-amqp://guest:guest@127.0.0.1:5682/%2f} -"
            "rabbitmq-tls $rabbit_tls ${rabbit_ca:?--rabbit-ca is needed with --rabbit-tls}")
fi
scenarios=("publish 16" "noack 16" "noack 4096")

run_one() { # rep label url ca scenario size
  local rep=$1 label=$2 url=$3 ca=$4 sc=$5 size=$6 caarg=()
  [ "$ca" != - ] && caarg=(--tls-ca "$ca")
  echo "  [rep $rep] $label $sc $size" >&2
  timeout 300 "$bench" --url "$url" "${caarg[@]}" --scenario "$sc" --size "$size" \
    --seconds "$secs" --json --label "$label" 2>>"$out/bench.stderr" \
    | sed "s/^{/{\"rep\":$rep,/" >>"$results" || echo "    (failed; see $out/bench.stderr)" >&2
}

for rep in $(seq "$reps"); do
  i=0
  for s in "${scenarios[@]}"; do
    read -r sc size <<<"$s"
    order=("${targets[@]}")
    if [ $(( (rep + i) % 2 )) = 1 ]; then # reverse: TLS first
      order=(); for ((k=${#targets[@]}-1; k>=0; k--)); do order+=("${targets[$k]}"); done
    fi
    for t in "${order[@]}"; do
      read -r label url ca <<<"$t"
      run_one "$rep" "$label" "$url" "$ca" "$sc" "$size"
    done
    i=$((i + 1))
  done
done

python3 - "$results" "$reps" <<'PY'
import json, statistics, sys
path, reps = sys.argv[1:3]
rows = [json.loads(l) for l in open(path) if l.strip().startswith("{")]
def med(label, scen, size):
    v = [r["rate"] for r in rows if r.get("label") == label and r["scenario"] == scen
         and r.get("size") == size and "error" not in r and "rate" in r]
    return statistics.median(v) if v else None
def fmt(v): return "-" if v is None else f"{v:,.0f}"
def ratio(t, p): return f"{t / p:.2f}" if t is not None and p else "-"
brokers = [b for b in ("warren", "rabbitmq") if any(r.get("label", "").startswith(b) for r in rows)]
print(f"\nTLS vs plain: medians of {reps} repetition(s), msg/s")
print(f"{'scenario':<26}" + "".join(f" {b + ' plain':>16} {b + ' TLS':>14} {'TLS/plain':>9}" for b in brokers))
for name, scen, size in [("publish-only 16 B", "publish", 16), ("1->1 no-ack 16 B", "noack", 16),
                         ("1->1 no-ack 4 KiB", "noack", 4096)]:
    cells = ""
    for b in brokers:
        p, t = med(b + "-plain", scen, size), med(b + "-tls", scen, size)
        cells += f" {fmt(p):>16} {fmt(t):>14} {ratio(t, p):>9}"
    print(f"{name:<26}{cells}")
PY
echo "raw results: $results" >&2
