#!/bin/sh
# Installs what the browser tests need (interop/ui/): Debian's chromium and
# chromium-driver, and selenium, pytest, pika and requests (latest from PyPI) into the
# python3 on PATH. Idempotent and quiet: what is already there is not installed again.
set -eu
PY="${PYTHON:-python3}"
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q "$@" >/dev/null
}
updated=0
apt_update_once() {
  [ "$updated" = 1 ] && return 0
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null
  updated=1
}
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  apt_update_once
  apt_install chromium chromium-driver
fi
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -m pip --version >/dev/null 2>&1; then
  apt_update_once
  apt_install python3 python3-pip
fi
for module in selenium pytest pika requests; do
  if ! "$PY" -c "import $module" >/dev/null 2>&1; then
    # --break-system-packages is needed on Debian 12's own python3 (PEP 668); older pips lack it
    "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --upgrade "$module" 2>/dev/null ||
      "$PY" -m pip install -q --disable-pip-version-check --break-system-packages --upgrade "$module"
  fi
done
