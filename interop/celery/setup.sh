#!/bin/sh
# Installs Celery (latest from PyPI; brings kombu and py-amqp) into the python3 on PATH.
set -eu
PY="${PYTHON:-python3}"
if ! command -v "$PY" >/dev/null 2>&1 || ! "$PY" -m pip --version >/dev/null 2>&1; then
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q python3 python3-pip >/dev/null
fi
if ! "$PY" -c 'import celery' >/dev/null 2>&1; then
  "$PY" -m pip install -q --disable-pip-version-check --root-user-action=ignore --upgrade celery 2>/dev/null ||
    "$PY" -m pip install -q --disable-pip-version-check --break-system-packages --upgrade celery
fi
