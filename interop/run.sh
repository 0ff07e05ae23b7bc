#!/usr/bin/env bash
# Interop runner: runs every interop/<lang>/run.sh (and the Rust interop test) against
# one broker and prints a matrix of scenario results.
#
# Usage: interop/run.sh [--url URL] [--only lang,lang] [--timeout SECONDS]
#
# Without --url it builds warren (cargo build --release), starts
# target/release/warren --port 0 --bind 127.0.0.1 [--bind ::1 where the machine has IPv6]
# --definitions interop/definitions.json
# (scenario 17's user `interop` and vhost `interop-vh`) --event-exchange (scenario 22), waits (30 s at most) for the
# stdout line `warren <version> ready on amqp://HOST:PORT` and uses
# amqp://guest:guest@127.0.0.1:PORT/%2f; the broker is stopped (by PID) at exit,
# also on Ctrl-C or error. Its management API (--management-port on a free port, the line
# `warren management API on http://HOST:PORT`) is passed as WARREN_INTEROP_HTTP_URL
# (guest/guest) for the `admin` row (rabbitmqadmin) and scenario 18 (the HTTP API from
# each language); with --url they are n/a unless that variable is set. It also makes
# throwaway certificates (interop/tls-certs.sh), opens warren's amqps listener (peer
# verification, EXTERNAL offered) and passes it to the columns as WARREN_INTEROP_TLS_URL,
# _CA, _CERT, _KEY for the `tls` row (python, node, go, rust). With --url the tls row is n/a unless those variables are set.
#
# The last line is `N passed, N failed` (`, N skipped` added when some cells are n/a).
# Exit status: 0 when nothing failed, 1 when something failed, 2 when it could not run.
set -u

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
ORDER="python celery node go java ruby php c rabbitmqadmin"
TLS_COLUMNS="python node go rust"  # the columns with a `tls` row
HTTP_COLUMNS="python go node ruby" # the columns with scenario 18 (the HTTP API)
STREAM_COLUMNS="python node"       # the columns with scenarios 19 and 19r (streams)
LANG_TIMEOUT=300
RUST_TIMEOUT=900
URL=""
ONLY=""

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }

while [ $# -gt 0 ]; do
  case "$1" in
    --url) [ $# -ge 2 ] || usage; URL="$2"; shift 2 ;;
    --url=*) URL="${1#--url=}"; shift ;;
    --only) [ $# -ge 2 ] || usage; ONLY="$2"; shift 2 ;;
    --only=*) ONLY="${1#--only=}"; shift ;;
    --timeout) [ $# -ge 2 ] || usage; LANG_TIMEOUT="$2"; shift 2 ;;
    -h|--help) usage ;;
    *) echo "unknown argument: $1" >&2; usage ;;
  esac
done

LOGDIR="$(mktemp -d "${TMPDIR:-/tmp}/warren-interop.XXXXXX")"
BROKER_PID=""
CHILD_PID=""

cleanup() {
  if [ -n "$CHILD_PID" ] && kill -0 "$CHILD_PID" 2>/dev/null; then
    kill -TERM "$CHILD_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$CHILD_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$CHILD_PID" 2>/dev/null
  fi
  CHILD_PID=""
  if [ -n "$BROKER_PID" ] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null
    for _ in $(seq 1 50); do kill -0 "$BROKER_PID" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
  fi
  BROKER_PID=""
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM HUP

# ---------------------------------------------------------------- which columns
selected() {  # selected NAME -> true when --only is empty or lists NAME
  [ -z "$ONLY" ] && return 0
  case ",$ONLY," in *",$1,"*) return 0 ;; esac
  return 1
}

COLUMNS_LIST=()
for l in $ORDER; do
  [ -f "$HERE/$l/run.sh" ] && selected "$l" && COLUMNS_LIST+=("$l")
done
for d in "$HERE"/*/; do
  l="$(basename "$d")"
  case " $ORDER " in *" $l "*) continue ;; esac
  # interop/ui is the web UI's browser suite, not a client column: .ci/run runs it on
  # its own (interop/ui/README.md).
  [ "$l" = ui ] && continue
  [ -f "$HERE/$l/run.sh" ] && selected "$l" && COLUMNS_LIST+=("$l")
done
HAVE_RUST=0
if [ -f "$ROOT/tests/interop.rs" ] && selected rust; then
  HAVE_RUST=1
  COLUMNS_LIST+=("rust")
fi
if [ -n "$ONLY" ]; then
  IFS=',' read -r -a wanted <<<"$ONLY"
  for w in "${wanted[@]}"; do
    found=0
    for c in "${COLUMNS_LIST[@]}"; do [ "$c" = "$w" ] && found=1; done
    [ $found = 1 ] || echo "warning: no runnable column '$w' (no interop/$w/run.sh, or tests/interop.rs missing for rust)" >&2
  done
fi
if [ ${#COLUMNS_LIST[@]} -eq 0 ]; then
  echo "nothing to run" >&2
  exit 2
fi

# ---------------------------------------------------------------- the broker
# launch_broker AMQP_PORT: starts $BIN on $LOGDIR/warren-data (0: a free port), waits for
# its ready line; sets BROKER_PID, PORT and line. Called again on the same port and data
# for the restart before 19r.
launch_broker() {
  "$BIN" --port "$1" --management-port "$HTTP_PORT" --prometheus-port 0 "${BIND_ARGS[@]}" \
    --data-dir "$LOGDIR/warren-data" "${TLS_ARGS[@]}" \
    --definitions "$HERE/definitions.json" --event-exchange \
    >"$LOGDIR/warren.out" 2>>"$LOGDIR/warren.err" </dev/null &
  BROKER_PID=$!
  PORT=""
  for _ in $(seq 1 300); do  # 30 s
    line="$(grep -m1 -E '^warren [^ ]+ ready on amqp://[^ ]+:[0-9]+' "$LOGDIR/warren.out" 2>/dev/null)"
    if [ -n "$line" ]; then
      PORT="$(printf '%s\n' "$line" | sed -E 's|.*ready on amqp://[^ ]*:([0-9]+).*|\1|')"
      return 0
    fi
    kill -0 "$BROKER_PID" 2>/dev/null || break
    sleep 0.1
  done
  echo "warren did not report 'ready' within 30 s (stdout/stderr in $LOGDIR):" >&2
  tail -n 20 "$LOGDIR/warren.out" "$LOGDIR/warren.err" >&2
  return 1
}

EXTERNAL=0; [ -n "$URL" ] && EXTERNAL=1
if [ -z "$URL" ]; then
  echo "building warren (cargo build --release) ..." >&2
  if ! (cd "$ROOT" && cargo build --release) >"$LOGDIR/build.log" 2>&1; then
    tail -n 30 "$LOGDIR/build.log" >&2
    echo "cargo build --release failed (log: $LOGDIR/build.log)" >&2
    exit 2
  fi
  BIN="$ROOT/target/release/warren"
  [ -x "$BIN" ] || { echo "no binary $BIN" >&2; exit 2; }
  TLS="$LOGDIR/tls"
  TLS_ARGS=()
  if bash "$HERE/tls-certs.sh" "$TLS" >"$LOGDIR/tls-certs.log" 2>&1; then
    TLS_ARGS=(--tls-port 0 --tls-cert "$TLS/server.pem" --tls-key "$TLS/server.key"
              --tls-ca "$TLS/ca.pem" --tls-verify peer --auth-mechanisms PLAIN,AMQPLAIN,EXTERNAL)
  else
    echo "could not make TLS certificates (openssl?): no TLS listener, the tls row is n/a (log: $LOGDIR/tls-certs.log)" >&2
  fi
  # --management-port 0 turns the API off: take a free port (released just before).
  HTTP_PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 15672)"
  # Loopback only (a shared CI machine), over IPv4 and, where the machine has it, IPv6:
  # scenario 25 connects to [::1] too.
  BIND_ARGS=(--bind 127.0.0.1)
  if python3 -c 'import socket; socket.socket(socket.AF_INET6).bind(("::1", 0))' 2>/dev/null; then
    BIND_ARGS+=(--bind ::1)
  fi
  launch_broker 0 || exit 2
  URL="amqp://guest:guest@127.0.0.1:$PORT/%2f"
  TLS_PORT="$(printf '%s\n' "$line" | sed -nE 's|.* and amqps://[^ ]*:([0-9]+).*|\1|p')"
  if [ -n "$TLS_PORT" ]; then
    export WARREN_INTEROP_TLS_URL="amqps://127.0.0.1:$TLS_PORT/%2f"
    export WARREN_INTEROP_TLS_CA="$TLS/ca.pem" WARREN_INTEROP_TLS_CERT="$TLS/client.pem" \
      WARREN_INTEROP_TLS_KEY="$TLS/client.key"
  fi
  # The management API's line follows the ready line.
  for _ in $(seq 1 50); do
    HTTP_PORT="$(sed -nE 's|^warren management API on http://[^ ]*:([0-9]+).*|\1|p' "$LOGDIR/warren.out")"
    [ -n "$HTTP_PORT" ] && break
    sleep 0.1
  done
  if [ -n "$HTTP_PORT" ]; then
    export WARREN_INTEROP_HTTP_URL="http://127.0.0.1:$HTTP_PORT"
  else
    echo "warren printed no management API line: the admin and 18 rows are n/a" >&2
  fi
  echo "warren (pid $BROKER_PID) ready on port $PORT${TLS_PORT:+, amqps on $TLS_PORT}${HTTP_PORT:+, management API on $HTTP_PORT}" >&2
fi
echo "broker: $URL   logs: $LOGDIR" >&2

# ---------------------------------------------------------------- run
declare -A RES=()     # "col|row" -> pass|FAIL|n/a
declare -A REASON=()  # "col|row" -> reason text
declare -A NOTE=()    # col -> why the whole column may be missing

# Scenario rows: 01..15, and 17 (a non-guest user on its own vhost: every language column
# and celery). Row 18 (the management HTTP API as that ecosystem uses it) comes from the
# HTTP_COLUMNS, row admin from the rabbitmqadmin column alone.
SCENARIO_ROWS="$(seq -f '%02g' 1 15) 17"
# Issue 14's rows, reported by some columns only: row -> the columns that must report it.
# Rows 19 and 19r (a stream, then the same stream after a kill -9 and restart) come from
# the STREAM_COLUMNS.
declare -A ROW_COLUMNS=([19]="$STREAM_COLUMNS" [19r]="$STREAM_COLUMNS" [20]="python node" [21]="python node" [22]="python node" [23]="python node" [24]="python node" [25]="python node")
EXTRA_ROWS="$(printf '%s\n' "${!ROW_COLUMNS[@]}" | sort)"

rows_of() {  # rows_of COL -> the rows this column must report
  case "$1" in
    celery) printf 'celery\n17\n' ;;
    rabbitmqadmin) echo admin; return ;;
    *) printf '%s\n' $SCENARIO_ROWS ;;
  esac
  case " $HTTP_COLUMNS " in *" $1 "*) echo 18 ;; esac
  local row
  for row in $EXTRA_ROWS; do
    case " ${ROW_COLUMNS[$row]} " in *" $1 "*) echo "$row" ;; esac
  done
  case " $TLS_COLUMNS " in *" $1 "*) echo tls ;; esac
}

collect() {  # collect COL FILE: read result lines from FILE
  local col="$1" file="$2" row status reason
  while IFS= read -r line; do
    line="${line%$'\r'}"
    if [[ "$line" =~ ^([0-9][0-9]|19r|celery|tls|admin)\ (pass|FAIL|n/a)(\ (.*))?$ ]]; then
      row="${BASH_REMATCH[1]}"; status="${BASH_REMATCH[2]}"; reason="${BASH_REMATCH[4]}"
      [ -n "${RES[$col|$row]+x}" ] && continue  # first line wins
      RES[$col|$row]="$status"
      REASON[$col|$row]="$reason"
    fi
  done <"$file"
}

run_with_timeout() {  # run_with_timeout SECONDS OUT ERR CMD... ; sets RC
  local secs="$1" out="$2" err="$3"; shift 3
  # timeout (without --foreground) signals the whole process group of the command
  timeout -k 10 "$secs" "$@" >"$out" 2>"$err" </dev/null &
  CHILD_PID=$!
  wait "$CHILD_PID"
  RC=$?
  CHILD_PID=""
}

for col in "${COLUMNS_LIST[@]}"; do
  start=$(date +%s)
  if [ "$col" = rust ]; then
    echo "== rust (cargo test --test interop)" >&2
    run_with_timeout "$RUST_TIMEOUT" "$LOGDIR/rust.out" "$LOGDIR/rust.err" \
      env WARREN_INTEROP_URL="$URL" bash -c 'cd "$1" && cargo test --test interop -- --nocapture 2>&1' _ "$ROOT"
    grep -E '^([0-9][0-9]|tls) (pass|FAIL|n/a)' "$LOGDIR/rust.out" >"$LOGDIR/rust.lines"
    collect rust "$LOGDIR/rust.lines"
    secs="$RUST_TIMEOUT"
  else
    echo "== $col" >&2
    run_with_timeout "$LANG_TIMEOUT" "$LOGDIR/$col.out" "$LOGDIR/$col.err" \
      bash "$HERE/$col/run.sh" "$URL"
    collect "$col" "$LOGDIR/$col.out"
    secs="$LANG_TIMEOUT"
  fi
  case "$RC" in
    0) ;;
    124|137) NOTE[$col]="timed out after ${secs}s" ;;
    *) NOTE[$col]="exited with status $RC" ;;
  esac
  echo "   $col: done in $(( $(date +%s) - start ))s${NOTE[$col]:+ (${NOTE[$col]})}; stderr: $LOGDIR/$col.err" >&2
done

# ---------------------------------------------------------------- 19r: after a restart
# The stream columns' scenario 19 left a stream each: warren is killed (kill -9, so only
# what it confirmed is there), started again on the same data and port, and each column
# reads its stream back (19r). An external broker (--url) is not ours to restart.
for col in "${COLUMNS_LIST[@]}"; do
  case " $STREAM_COLUMNS " in *" $col "*) ;; *) continue ;; esac
  if [ "$EXTERNAL" = 1 ]; then
    RES[$col|19r]="n/a"; REASON[$col|19r]="external broker (--url): no restart"
    continue
  fi
  if [ -z "${RESTARTED:-}" ]; then
    RESTARTED=1
    echo "== restarting warren (kill -9) for 19r" >&2
    kill -KILL "$BROKER_PID" 2>/dev/null; wait "$BROKER_PID" 2>/dev/null
    launch_broker "$PORT" || { BROKER_PID=""; RESTARTED=failed; }
  fi
  if [ "$RESTARTED" = failed ]; then
    RES[$col|19r]="FAIL"; REASON[$col|19r]="warren did not start again on its data"
    continue
  fi
  case "$col" in
    python) run_with_timeout "$LANG_TIMEOUT" "$LOGDIR/$col.19r.out" "$LOGDIR/$col.19r.err" \
              env ONLY=19r bash "$HERE/$col/run.sh" "$URL" ;;
    *) run_with_timeout "$LANG_TIMEOUT" "$LOGDIR/$col.19r.out" "$LOGDIR/$col.19r.err" \
         bash "$HERE/$col/run.sh" "$URL" 19r ;;
  esac
  collect "$col" "$LOGDIR/$col.19r.out"
done

cleanup  # stop the broker before printing

# ---------------------------------------------------------------- report
ALL_ROWS="$SCENARIO_ROWS 18 $EXTRA_ROWS tls celery admin"
w=6
for col in "${COLUMNS_LIST[@]}"; do [ ${#col} -gt $w ] && w=${#col}; done

printf '%-8s' "scenario"
for col in "${COLUMNS_LIST[@]}"; do printf " %-${w}s" "$col"; done
printf '\n'
passed=0; failed=0; skipped=0
REPORT=()
for row in $ALL_ROWS; do
  # skip the rows no column covers (celery, tls, 18, admin; any with --only)
  has=0; for col in "${COLUMNS_LIST[@]}"; do rows_of "$col" | grep -qx "$row" && has=1; done
  [ $has = 1 ] || continue
  printf '%-8s' "$row"
  for col in "${COLUMNS_LIST[@]}"; do
    if ! rows_of "$col" | grep -qx "$row"; then
      printf " %-${w}s" ""
      continue
    fi
    cell="${RES[$col|$row]:--}"
    printf " %-${w}s" "$cell"
    case "$cell" in
      pass) passed=$((passed + 1)) ;;
      n/a) skipped=$((skipped + 1)); REPORT+=("n/a  $col $row: ${REASON[$col|$row]}") ;;
      FAIL) failed=$((failed + 1)); REPORT+=("FAIL $col $row: ${REASON[$col|$row]}") ;;
      *) failed=$((failed + 1)); REPORT+=("FAIL $col $row: no result line${NOTE[$col]:+ (run.sh ${NOTE[$col]})}") ;;
    esac
  done
  printf '\n'
done
if [ ${#REPORT[@]} -gt 0 ]; then
  printf '\n'
  # failures first, then n/a
  for r in "${REPORT[@]}"; do case "$r" in FAIL*) printf '%s\n' "$r" ;; esac; done
  for r in "${REPORT[@]}"; do case "$r" in n/a*) printf '%s\n' "$r" ;; esac; done
fi
printf '\n'
if [ $skipped -gt 0 ]; then
  printf '%d passed, %d failed, %d skipped\n' $passed $failed $skipped
else
  printf '%d passed, %d failed\n' $passed $failed
fi
[ $failed -eq 0 ] || exit 1
exit 0
