#!/usr/bin/env bash
# Runs every interop/<lang>/setup.sh that exists (installs what each client needs).
# Usage: interop/setup.sh [--only lang,lang]
# Goes on when one fails; exit status 1 if any failed.
set -u
HERE="$(cd "$(dirname "$0")" && pwd)"
ORDER="python celery node go java ruby php c rabbitmqadmin"
ONLY=""
case "${1:-}" in
  --only) ONLY="${2:-}" ;;
  --only=*) ONLY="${1#--only=}" ;;
  "") ;;
  *) echo "usage: $0 [--only lang,lang]" >&2; exit 2 ;;
esac
selected() { [ -z "$ONLY" ] && return 0; case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }

langs=()
for l in $ORDER; do [ -f "$HERE/$l/setup.sh" ] && langs+=("$l"); done
for d in "$HERE"/*/; do
  l="$(basename "$d")"
  case " $ORDER " in *" $l "*) continue ;; esac
  # interop/ui is the web UI's browser suite, not a client column: .ci/run runs it on
  # its own (interop/ui/README.md).
  [ "$l" = ui ] && continue
  [ -f "$HERE/$l/setup.sh" ] && langs+=("$l")
done

failed=()
for l in "${langs[@]}"; do
  selected "$l" || continue
  start=$(date +%s)
  if bash "$HERE/$l/setup.sh"; then
    echo "setup $l: ok ($(( $(date +%s) - start ))s)" >&2
  else
    echo "setup $l: FAILED (status $?)" >&2
    failed+=("$l")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "setup failed for: ${failed[*]}" >&2
  exit 1
fi
exit 0
