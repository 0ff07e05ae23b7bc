#!/bin/sh
# Usage: run.sh AMQP_URL   -- runs scenarios 01..15 and 17 with the RabbitMQ Java client.
# Optional: ONLY=03,07 run.sh URL  runs a subset.
set -u
URL="${1:?usage: run.sh AMQP_URL}"
DIR="$(cd "$(dirname "$0")" && pwd)"
BUILD="$DIR/build"
J=/usr/share/java
CP="$J/amqp-client.jar:$J/slf4j-api.jar"
if [ -f "$J/slf4j-simple.jar" ]; then CP="$CP:$J/slf4j-simple.jar"; elif [ -f "$J/slf4j-nop.jar" ]; then CP="$CP:$J/slf4j-nop.jar"; fi
if [ ! -f "$J/amqp-client.jar" ] || ! command -v javac >/dev/null 2>&1; then
  echo "missing amqp-client.jar or javac: run $DIR/setup.sh" >&2
  exit 1
fi
mkdir -p "$BUILD"
if [ ! -f "$BUILD/Interop.class" ] || [ "$DIR/Interop.java" -nt "$BUILD/Interop.class" ] || [ "$J/amqp-client.jar" -nt "$BUILD/Interop.class" ]; then
  javac -nowarn -d "$BUILD" -cp "$CP" "$DIR/Interop.java" >&2 || { echo "javac failed" >&2; exit 1; }
fi
# slf4j-simple logs to stderr; the Interop program prints only the result lines on stdout.
exec java -Xmx512m -Dorg.slf4j.simpleLogger.defaultLogLevel=warn -cp "$BUILD:$CP" Interop "$URL"
