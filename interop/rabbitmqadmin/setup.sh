#!/usr/bin/env bash
# Fetches rabbitmqadmin (a python3 script) without installing RabbitMQ: downloads
# Debian's rabbitmq-server package (apt-get download), extracts only usr/bin/rabbitmqadmin
# (dpkg-deb -x) into interop/rabbitmqadmin/bin/ (git-ignored). Bounded: 120 s for the
# download. Nothing is installed system-wide.
set -euo pipefail
DIR="$(cd "$(dirname "$0")" && pwd)"
if [ -x "$DIR/bin/rabbitmqadmin" ]; then
  echo "rabbitmqadmin: $("$DIR/bin/rabbitmqadmin" --version 2>&1)" >&2
  exit 0
fi
command -v python3 >/dev/null || { echo "rabbitmqadmin needs python3" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# apt-get download writes to the current directory; _apt may not write there.
chmod 777 "$work"
(cd "$work" && timeout 120 apt-get download -q rabbitmq-server >"$work/download.log" 2>&1) || {
  # An old package list may name a version the mirror no longer has.
  timeout 120 apt-get update -qq >/dev/null 2>&1 || true
  (cd "$work" && timeout 120 apt-get download -q rabbitmq-server >"$work/download.log" 2>&1)
} || { cat "$work/download.log" >&2; exit 1; }
deb="$(ls "$work"/rabbitmq-server_*.deb)"
dpkg-deb -x "$deb" "$work/x"
mkdir -p "$DIR/bin"
install -m 755 "$work/x/usr/bin/rabbitmqadmin" "$DIR/bin/rabbitmqadmin"
echo "rabbitmqadmin: $("$DIR/bin/rabbitmqadmin" --version 2>&1) from $(basename "$deb")" >&2
