#!/bin/sh
# Installs pika and requests (latest from PyPI; requests for scenario 18, the HTTP API)
# into the python3 on PATH. Idempotent and quiet.
set -eu
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q python3 python3-pip >/dev/null
fi
if ! "$PY" -m pip --version >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q python3-pip >/dev/null
fi
for module in pika requests; do
  if ! "$PY" -c "import $module" >/dev/null 2>&1; then
    # --break-system-packages is needed on Debian 12's own python3 (PEP 668); older pips lack it
    "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --upgrade "$module" 2>/dev/null ||
      "$PY" -m pip install -q --disable-pip-version-check --break-system-packages --upgrade "$module"
  fi
done
