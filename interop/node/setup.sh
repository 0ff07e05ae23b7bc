#!/usr/bin/env bash
# Installs what the Node interop scenarios need: node + npm (Debian packages if
# missing) and amqplib, locally into interop/node/node_modules (pinned by package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=600 update -qq >/dev/null
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq nodejs npm >/dev/null
fi
want=$(node -p "require('./package-lock.json').packages['node_modules/amqplib'].version")
have=$(node -p "try{require('./node_modules/amqplib/package.json').version}catch(e){''}" 2>/dev/null || true)
if [ "$want" != "$have" ]; then
  npm ci --no-audit --no-fund --loglevel=error >&2
fi
