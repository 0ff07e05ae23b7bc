#!/bin/sh
# Installs bunny from Debian (ruby-bunny pulls ruby and ruby-amq-protocol).
set -e
if ! dpkg-query -W -f='${Status}' ruby-bunny 2>/dev/null | grep -q "install ok installed"; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q ruby-bunny >/dev/null \
    || { $SUDO apt-get -o DPkg::Lock::Timeout=600 update -q >/dev/null && \
         $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -q ruby-bunny >/dev/null; }
fi
