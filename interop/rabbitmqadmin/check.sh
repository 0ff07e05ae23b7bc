#!/usr/bin/env bash
# Usage: check.sh HTTP_URL   (e.g. http://127.0.0.1:15672; guest/guest, or USER/PASS)
# Runs rabbitmqadmin (RABBITMQADMIN, or the one setup.sh fetched) against a management
# API and checks what each command prints: list (overview, users, vhosts, connections,
# exchanges, queues, bindings), declare (exchange, queue with arguments, binding, user,
# permission, vhost), publish, get (ackmode), purge, delete, export and import of
# definitions. Every object it makes is named cli-rmqadmin-* and deleted at the end, so
# it can run against a shared RabbitMQ to prove the checks themselves right.
# Prints one "ok/FAIL check" line per check on stderr, then on stdout
# `admin pass` or `admin FAIL <first failed check>: <why>`. Exit 0 when all passed.
set -u
URL="${1:?usage: check.sh HTTP_URL}"
DIR="$(cd "$(dirname "$0")" && pwd)"
ADMIN="${RABBITMQADMIN:-$DIR/bin/rabbitmqadmin}"
USER="${USER_NAME:-guest}" PASS="${PASSWORD:-guest}"
[ -x "$ADMIN" ] || command -v "$ADMIN" >/dev/null || {
  echo "admin FAIL no rabbitmqadmin at $ADMIN: run $DIR/setup.sh"; exit 1; }
TMP="$(mktemp -d)"
P=cli-rmqadmin
Q=$P-q X=$P-x U=$P-u V=$P-v

ra() { timeout 60 python3 "$ADMIN" -U "$URL" -u "$USER" -p "$PASS" "$@"; }
# JSON field(s) of rabbitmqadmin's raw_json output, via python: json_get EXPR < json
json_get() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }

cleanup() {
  ra delete queue name=$Q >/dev/null 2>&1
  ra delete exchange name=$X >/dev/null 2>&1
  ra delete user name=$U >/dev/null 2>&1
  ra delete vhost name=$V >/dev/null 2>&1
  rm -rf "$TMP"
}
trap cleanup EXIT
cleanup >/dev/null 2>&1; TMP="$(mktemp -d)"

FAILED=""
check() {  # check NAME FUNCTION: the function prints why it failed
  local name="$1" why
  if why="$("$2" 2>&1)"; then
    echo "ok   $name" >&2
  else
    why="$(printf '%s' "$why" | tr '\n\t' '  ' | cut -c1-300)"
    echo "FAIL $name: $why" >&2
    [ -n "$FAILED" ] || FAILED="$name: $why"
  fi
}
# has TEXT LINE: TEXT (tab-separated tsv output) has exactly LINE
has() { printf '%s\n' "$1" | grep -qxF -- "$2" || { echo "no line '$2' in: $1"; return 1; }; }
hasnt() { ! printf '%s\n' "$1" | grep -qF -- "$2" || { echo "'$2' still in: $1"; return 1; }; }

overview() { local o; o="$(ra -f raw_json show overview)" || return 1
  printf '%s' "$o" | json_get "d[0]['rabbitmq_version'] if isinstance(d, list) else d['rabbitmq_version']" >/dev/null; }
users() { local o; o="$(ra -f tsv list users name tags)" || return 1
  has "$o" "$(printf 'guest\t["administrator"]')" || has "$o" "$(printf 'guest\tadministrator')"; }
vhosts() { local o; o="$(ra -f tsv list vhosts name)" || return 1; has "$o" "/"; }
connections() { ra -f tsv list connections name user >/dev/null; }
declare_exchange() { local o
  o="$(ra declare exchange name=$X type=topic durable=false)" || return 1
  has "$o" "exchange declared" || return 1
  o="$(ra -f tsv list exchanges name type durable)" || return 1
  has "$o" "$(printf '%s\ttopic\tFalse' $X)"; }
declare_queue() { local o
  o="$(ra declare queue name=$Q durable=false arguments='{"x-max-length": 10}')" || return 1
  has "$o" "queue declared" || return 1
  o="$(ra -f raw_json list queues name arguments)" || return 1
  printf '%s' "$o" | json_get "[q['arguments'] for q in d if q['name']=='$Q']" | grep -qF "{'x-max-length': 10}" \
    || { echo "queue or its arguments missing: $o"; return 1; }; }
declare_binding() { local o
  o="$(ra declare binding source=$X destination=$Q routing_key='a.*')" || return 1
  has "$o" "binding declared" || return 1
  o="$(ra -f tsv list bindings source destination routing_key)" || return 1
  has "$o" "$(printf '%s\t%s\ta.*' $X $Q)"; }
messages_become() {  # messages_become N: statistics may lag (RabbitMQ: 5 s)
  local o n
  for _ in $(seq 1 40); do
    o="$(ra -f raw_json list queues name messages)" || return 1
    n="$(printf '%s' "$o" | json_get "[q.get('messages') for q in d if q['name']=='$Q'][0]")"
    [ "$n" = "$1" ] && return 0
    sleep 0.5
  done
  echo "queue $Q shows $n messages, not $1"; return 1; }
publish() { local o
  o="$(ra publish exchange=$X routing_key=a.b payload=hello properties='{"content_type":"text/plain"}')" || return 1
  has "$o" "Message published" || return 1
  o="$(ra publish exchange=$X routing_key=nope payload=lost)" || return 1
  has "$o" "Message published but NOT routed" || return 1
  messages_become 1; }
get_ack() { local o
  o="$(ra -f raw_json get queue=$Q ackmode=ack_requeue_false count=5)" || return 1
  printf '%s' "$o" | json_get "(len(d), d[0]['payload'], d[0]['routing_key'], d[0]['exchange'], d[0]['properties'].get('content_type'))" \
    | grep -qxF "(1, 'hello', 'a.b', '$X', 'text/plain')" || { echo "get gave: $o"; return 1; }
  messages_become 0; }
get_requeue() { local o
  ra publish exchange=$X routing_key=a.c payload=again >/dev/null || return 1
  messages_become 1 || return 1
  o="$(ra -f raw_json get queue=$Q ackmode=ack_requeue_true)" || return 1
  printf '%s' "$o" | json_get "(d[0]['payload'], d[0]['redelivered'])" | grep -qxF "('again', False)" \
    || { echo "get gave: $o"; return 1; }
  o="$(ra -f raw_json get queue=$Q ackmode=ack_requeue_true)" || return 1
  printf '%s' "$o" | json_get "(d[0]['payload'], d[0]['redelivered'])" | grep -qxF "('again', True)" \
    || { echo "second get gave: $o"; return 1; }; }
purge() { local o
  o="$(ra purge queue name=$Q)" || return 1
  has "$o" "queue purged" || return 1
  messages_become 0; }
user_permission_vhost() { local o
  o="$(ra declare user name=$U password=pw tags=monitoring)" || return 1
  has "$o" "user declared" || return 1
  o="$(ra declare vhost name=$V)" || return 1
  has "$o" "vhost declared" || return 1
  o="$(ra declare permission vhost=$V user=$U configure='^c' write='.*' read='')" || return 1
  has "$o" "permission declared" || return 1
  o="$(ra -f tsv list permissions vhost user configure write read)" || return 1
  has "$o" "$(printf '%s\t%s\t^c\t.*\t' $V $U)" || return 1
  o="$(ra -f tsv list users name tags)" || return 1
  has "$o" "$(printf '%s\t["monitoring"]' $U)" || has "$o" "$(printf '%s\tmonitoring' $U)"; }
export_import() { local o
  o="$(ra export "$TMP/defs.json")" || return 1
  printf '%s' "$o" | grep -qF "Exported definitions" || { echo "export said: $o"; return 1; }
  json_get "[q['name'] for q in d['queues'] if q['name']=='$Q'] + [u['name'] for u in d['users'] if u['name']=='$U']" \
    <"$TMP/defs.json" | grep -qxF "['$Q', '$U']" || { echo "export lacks $Q or $U"; return 1; }
  # Only this script's objects go back: on a shared broker, re-importing everything
  # would bring back what others deleted meanwhile.
  python3 - "$TMP/defs.json" "$P" <<'PY' || return 1
import json, sys
path, prefix = sys.argv[1], sys.argv[2]
d = json.load(open(path))
for key in ("users", "vhosts", "queues", "exchanges"):
    d[key] = [o for o in d.get(key, []) if o["name"].startswith(prefix)]
d["permissions"] = [p for p in d.get("permissions", []) if p["user"].startswith(prefix)]
d["bindings"] = [b for b in d.get("bindings", []) if b["source"].startswith(prefix)]
for key in ("policies", "parameters", "global_parameters", "topic_permissions"):
    d[key] = []
json.dump(d, open(path, "w"))
PY
  ra delete queue name=$Q >/dev/null || return 1
  ra delete user name=$U >/dev/null || return 1
  o="$(ra import "$TMP/defs.json")" || return 1
  printf '%s' "$o" | grep -qF "Uploaded definitions" || { echo "import said: $o"; return 1; }
  o="$(ra -f tsv list queues name)" || return 1
  has "$o" "$Q" || return 1
  o="$(ra -f tsv list users name)" || return 1
  has "$o" "$U" || return 1
  # The binding and the permission came back with them.
  o="$(ra -f tsv list bindings source destination routing_key)" || return 1
  has "$o" "$(printf '%s\t%s\ta.*' $X $Q)" || return 1
  o="$(ra -f tsv list permissions vhost user configure)" || return 1
  has "$o" "$(printf '%s\t%s\t^c' $V $U)"; }
delete_all() { local o
  o="$(ra delete binding source=$X destination=$Q destination_type=queue properties_key='a.*')" || return 1
  has "$o" "binding deleted" || return 1
  o="$(ra -f tsv list bindings source destination routing_key)" || return 1
  hasnt "$o" "$X" || return 1
  for kind in queue exchange user vhost; do
    case $kind in queue) n=$Q ;; exchange) n=$X ;; user) n=$U ;; vhost) n=$V ;; esac
    o="$(ra delete $kind name=$n)" || return 1
    has "$o" "$kind deleted" || return 1
  done
  o="$(ra -f tsv list queues name)" || return 1
  hasnt "$o" "$Q"; }
missing_is_an_error() { local o
  # rabbitmqadmin exits non-zero on the API's 404 and names it.
  if o="$(ra delete queue name=$P-none 2>&1)"; then echo "deleting a missing queue succeeded: $o"; return 1; fi
  printf '%s' "$o" | grep -qF "Not found" || { echo "said: $o"; return 1; }; }

check overview overview
check list-users users
check list-vhosts vhosts
check list-connections connections
check declare-exchange declare_exchange
check declare-queue declare_queue
check declare-binding declare_binding
check publish publish
check get-ack get_ack
check get-requeue get_requeue
check purge purge
check user-permission-vhost user_permission_vhost
check export-import export_import
check delete delete_all
check missing-is-an-error missing_is_an_error

if [ -z "$FAILED" ]; then echo "admin pass"; exit 0; fi
echo "admin FAIL $FAILED"
exit 1
