#!/bin/sh
# Installs the Debian RabbitMQ Java client, slf4j and a JDK (only if javac is missing).
set -e
pkgs="librabbitmq-client-java libslf4j-java"
command -v javac >/dev/null 2>&1 || pkgs="$pkgs default-jdk-headless"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -n "$missing" ]; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q $missing >/dev/null \
    || { $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null && \
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q $missing >/dev/null; }
fi
