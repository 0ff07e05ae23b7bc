#!/usr/bin/env bash
# Installs php-cli and php-amqplib (plus the extensions it uses) from Debian. Idempotent.
set -eu
need=""
for p in php-cli php-amqplib php-bcmath php-mbstring; do
    dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq $need >/dev/null
fi
