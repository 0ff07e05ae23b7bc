#!/usr/bin/env bash
# Runs the browser tests of warren's web UI (pytest + Selenium + headless Chromium).
# Usage: interop/ui/run.sh [PYTEST ARGS...]   e.g. interop/ui/run.sh test_login.py -x
#
# Installs nothing (interop/ui/setup.sh does). Uses target/release/warren (WARREN_BIN
# overrides); builds it with cargo build --release only when it is missing. Each test
# session starts its own warren on free ports (interop/ui/conftest.py). Screenshots and
# load-times.txt go to $UI_SCREENSHOTS (default target/ui-screenshots/).
# The whole run is bounded (UI_TIMEOUT seconds, default 600). Prints pytest's summary
# line last; exit status 0 when every test passed, non-zero otherwise.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PY="${PYTHON:-python3}"
export UI_SCREENSHOTS="${UI_SCREENSHOTS:-$ROOT/target/ui-screenshots}"
mkdir -p "$UI_SCREENSHOTS"

BIN="${WARREN_BIN:-$ROOT/target/release/warren}"
# The tests run from interop/ui/: paths given relative to here are made absolute.
case "$BIN" in /*) ;; *) BIN="$PWD/$BIN" ;; esac
case "${WARREN_UI_DIR:-/}" in /*) ;; *) export WARREN_UI_DIR="$PWD/$WARREN_UI_DIR" ;; esac
case "$UI_SCREENSHOTS" in /*) ;; *) UI_SCREENSHOTS="$PWD/$UI_SCREENSHOTS" ;; esac
if [ ! -x "$BIN" ]; then
  echo "no $BIN: cargo build --release ..." >&2
  (cd "$ROOT" && cargo build --release) >&2 || { echo "cargo build --release failed" >&2; exit 2; }
fi
export WARREN_BIN="$BIN"

LOG="$(mktemp "${TMPDIR:-/tmp}/warren-ui-pytest.XXXXXX")"
start=$(date +%s)
# pytest's own output on stderr as it goes; the log is kept for the summary line.
# From interop/ui/, so "run.sh test_login.py" names a file there.
(cd "$HERE" && exec timeout -k 10 "${UI_TIMEOUT:-600}" "$PY" -m pytest -p no:cacheprovider \
  -q -rfEs --rootdir "$HERE" "$@") </dev/null 2>&1 | tee "$LOG" >&2
rc=${PIPESTATUS[0]}
secs=$(( $(date +%s) - start ))
summary="$(grep -E '^(=+ )?[0-9]+ (passed|failed|error|skipped)|no tests ran' "$LOG" | tail -n 1)"
rm -f "$LOG"
case "$rc" in
  124|137) echo "interop/ui: timed out after ${UI_TIMEOUT:-600}s" >&2 ;;
esac
echo "ui tests: ${summary:-no summary (status $rc)} in ${secs}s; screenshots in $UI_SCREENSHOTS"
exit "$rc"
