#!/usr/bin/env bash
# Re-runs every crash of a target and prints one line per input: its cause (the panic
# message, or the harness's stack-overflow report), so that a long -ignore_crashes run
# can be sorted into distinct bugs.
#
#   fuzz/triage.sh TARGET          (after fuzz/run.sh has built it)
set -uo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/triage.sh TARGET}
bin="target/$(rustc -vV | sed -n 's/^host: //p')/release/$target"
for input in artifacts/"$target"/crash-*; do
  [ -e "$input" ] || continue
  cause=$(timeout 120 "$bin" -handle_segv=0 -handle_bus=0 -runs=1 "$input" 2>&1 |
    grep -m1 -E "panicked at|==warren-fuzz==|broker (kept|did not|refused)|ERROR: libFuzzer" ||
    echo "no crash on re-run")
  printf '%s\t%s\t%s\n' "$(stat -c %s "$input")" "$input" "$cause"
done
