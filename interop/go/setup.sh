#!/usr/bin/env bash
# Installs what the Go interop scenarios need, from Debian packages only:
# the Go toolchain and the packaged source of github.com/rabbitmq/amqp091-go
# (lands under /usr/share/gocode/src; go.mod points at it with a replace directive).
set -euo pipefail
need=()
command -v go >/dev/null 2>&1 || need+=(golang-go)
[ -f /usr/share/gocode/src/github.com/rabbitmq/amqp091-go/go.mod ] || need+=(golang-github-rabbitmq-amqp091-go-dev)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq "${need[@]}" >/dev/null
fi
