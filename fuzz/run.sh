#!/usr/bin/env bash
# Builds warren's fuzz targets on stable Rust and runs one of them with libFuzzer.
#
#   fuzz/run.sh TARGET SECONDS [libFuzzer options...]   run TARGET for SECONDS
#   fuzz/run.sh --build                                  build all targets only
#
# Coverage instrumentation is set by hand (what cargo-fuzz would set, minus the address
# sanitizer, which needs nightly), so no nightly toolchain and no cargo-fuzz are needed.
# New inputs go to fuzz/work/TARGET (not in git), seeds are read from fuzz/corpus/TARGET,
# crashes land in fuzz/artifacts/TARGET/. Exit status is libFuzzer's: non-zero on a crash.
set -euo pipefail
cd "$(dirname "$0")"

host=$(rustc -vV | sed -n 's/^host: //p')
export RUSTFLAGS="-Cpasses=sancov-module \
 -Cllvm-args=-sanitizer-coverage-level=4 \
 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters \
 -Cllvm-args=-sanitizer-coverage-pc-table \
 -Cllvm-args=-sanitizer-coverage-trace-compares \
 --cfg fuzzing -Cdebug-assertions -Coverflow-checks ${RUSTFLAGS:-}"
# --target keeps the instrumentation off build scripts and proc macros (they would not link).
cargo build --release --target "$host" --bins ${FUZZ_JOBS:+-j "$FUZZ_JOBS"}
[ "${1:-}" = "--build" ] && exit 0

target=${1:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer options...]}
seconds=${2:?usage: fuzz/run.sh TARGET SECONDS [libFuzzer options...]}
shift 2
case "$target" in
  # A session is structured input; 64 KiB makes sessions of hundreds of operations.
  connection) max_len=65536 ;;
  # What one frame can carry at the default frame_max: enough to nest tables deeply.
  frames | properties | table) max_len=131072 ;;
  # A header line and a form body: a few KiB covers several parts.
  http) max_len=16384 ;;
  *) echo "unknown target $target (connection, frames, properties, table, http)" >&2; exit 2 ;;
esac
mkdir -p "work/$target" "corpus/$target" "artifacts/$target"
# The broker's runtime workers have 2 MiB stacks; the fuzzer's main thread gets the same,
# so input that would overflow a worker's stack overflows here too.
# Stack overflows are reported by the harness's own SIGSEGV handler, on an alternate
# stack, which aborts so that libFuzzer saves the input (see src/overflow.rs); libFuzzer's
# handler would run on the overflowed stack and die without a word.
exec "target/$host/release/$target" "work/$target" "corpus/$target" \
  -artifact_prefix="artifacts/$target/" -max_total_time="$seconds" -max_len="$max_len" \
  -rss_limit_mb=2048 -timeout=30 -handle_segv=0 -handle_bus=0 -print_final_stats=1 "$@"
