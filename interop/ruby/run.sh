#!/bin/sh
# Usage: run.sh AMQP_URL   -- runs scenarios 01..15 with bunny (Debian ruby-bunny).
# Optional: ONLY=03,07 run.sh URL  runs a subset.
set -u
URL="${1:?usage: run.sh AMQP_URL}"
DIR="$(cd "$(dirname "$0")" && pwd)"
if ! command -v ruby >/dev/null 2>&1 || ! ruby -e 'require "bunny"' >/dev/null 2>&1; then
  echo "ruby or bunny missing: run $DIR/setup.sh" >&2
  exit 1
fi
ruby -e 'require "bunny"; require "amq/protocol/version"; $stderr.puts "ruby #{RUBY_VERSION}, bunny #{Bunny::VERSION}, amq-protocol #{AMQ::Protocol::VERSION}"'
exec ruby "$DIR/interop.rb" "$URL"
