#!/usr/bin/env bash
# Installs a C compiler, pkg-config and librabbitmq-dev from Debian. Idempotent.
set -eu
need=""
for p in gcc libc6-dev pkg-config librabbitmq-dev; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq $need >/dev/null
fi
