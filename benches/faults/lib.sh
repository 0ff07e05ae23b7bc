# Shared by the fault scripts (sourced): paths, the one release build, a results file.
#   WARREN_BIN   the broker (default target/release/warren)
#   FAULTS_BIN   the clients (default target/release/warren-faults)
#   NO_BUILD=1   skip the release builds of warren and of tools/ (the binaries are there)
#   FAULTS_OUT   directory for logs and results.jsonl (default: a new temporary one)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
WARREN_BIN=${WARREN_BIN:-$root/target/release/warren}
FAULTS_BIN=${FAULTS_BIN:-$root/target/release/warren-faults}
BENCH_BIN=${BENCH_BIN:-$root/target/release/warren-bench}
if [ "${NO_BUILD:-0}" != 1 ]; then
  # Two commands, not one: built together, the two packages' dependencies would be built
  # with the union of their features, a third build beside the ones CI already has.
  (cd "$root" && cargo build --release --quiet && cargo build --release -p warren-tools --quiet)
fi
FAULTS_OUT=${FAULTS_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/warren-faults.XXXXXX")}
mkdir -p "$FAULTS_OUT"
results=$FAULTS_OUT/results.jsonl

# faults NAME ARGS...: run warren-faults, its JSON line appended to results.jsonl and
# shown; returns its exit status.
faults() {
  local name=$1; shift
  local rc=0
  "$FAULTS_BIN" --broker "$WARREN_BIN" "$@" >"$FAULTS_OUT/$name.json" 2>"$FAULTS_OUT/$name.err" || rc=$?
  cat "$FAULTS_OUT/$name.json" | tee -a "$results"
  if [ $rc -ne 0 ]; then
    echo "FAIL $name (exit $rc):" >&2
    tail -n 20 "$FAULTS_OUT/$name.err" >&2
  fi
  return $rc
}
