#!/usr/bin/env bash
# Makes throwaway TLS certificates for warren's amqps listener, with openssl:
#   DIR/ca.pem                          a CA (CN=warren interop CA)
#   DIR/server.pem DIR/server.key       signed by it, for 127.0.0.1 and localhost
#   DIR/client.pem DIR/client.key       signed by it, CN=${CLIENT_CN:-guest} (EXTERNAL login)
# Usage: interop/tls-certs.sh DIR     (used by interop/run.sh and benches/tls.sh)
# Nothing here is secret or kept: the keys live in DIR only, made fresh each run.
set -euo pipefail
dir=${1:?usage: tls-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
ossl() { openssl "$@" 2>/dev/null; }
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj "/CN=warren interop CA" -keyout ca.key -out ca.pem \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
leaf() { # name subject extensions
  ossl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr"
  printf '%s\n' "$3" >"$1.ext"
  ossl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.pem"
  rm -f "$1.csr" "$1.ext"
}
leaf server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1
extendedKeyUsage=serverAuth
basicConstraints=CA:FALSE"
leaf client "/CN=${CLIENT_CN:-guest}/O=warren interop" "extendedKeyUsage=clientAuth
basicConstraints=CA:FALSE"
# Some clients read PKCS#8 only; openssl 3 writes it by default.
chmod 600 ./*.key
