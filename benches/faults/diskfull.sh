#!/usr/bin/env bash
# Disk full: the broker's data directory on a size-limited tmpfs (needs root for mount),
# part of it taken by a filler file; persistent messages with confirms until nothing more
# is confirmed. Checks: the broker stays up and answers, publishing resumes once the
# filler is removed, and after a restart every confirmed message is there once, undamaged.
# Run twice: with warren's default --disk-free-limit (the alarm blocks publishers before
# the disk is full) and with --disk-free-limit 0 (the disk really fills; the store's
# writes fail).
#
#   benches/faults/diskfull.sh [--mode alarm|zero|both]
#
# alarm: a 160 MiB file system with a 32 MiB filler: 128 MiB free, so the alarm (50 MB)
#        leaves ~78 MiB of headroom (removing the filler gives ~30 MiB above it);
#        publishing is paced at 2000 msg/s (8 MiB/s) to test the alarm itself (the
#        disk is checked every 100 ms, 20 ms near the limit; `warren-faults diskfull
#        --rate 0` runs it unpaced, see README.md);
# zero:  a 64 MiB file system with an 8 MiB filler, publishing as fast as it can.
#
# Environment: see lib.sh. Exit status 1 when a guarantee is broken in either mode.
set -euo pipefail
mode=both
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=$2; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
source "$(dirname "$0")/lib.sh"

mnt=$(mktemp -d "${TMPDIR:-/tmp}/warren-diskfull.XXXXXX")
# Unmounted on every exit; warren-faults has stopped its broker by then.
trap 'mountpoint -q "$mnt" && { umount "$mnt" || umount -l "$mnt"; }; rmdir "$mnt"' EXIT

failed=0
for m in alarm zero; do
  [ "$mode" = both ] || [ "$mode" = "$m" ] || continue
  if [ $m = alarm ]; then fs_mb=160 filler_mb=32 rate=2000; else fs_mb=64 filler_mb=8 rate=0; fi
  mount -t tmpfs -o "size=${fs_mb}m" tmpfs "$mnt"
  dd if=/dev/zero of="$mnt/filler" bs=1M count="$filler_mb" status=none
  extra=()
  [ "$m" = zero ] && extra=(--broker-arg=--disk-free-limit=0)
  echo "diskfull ($m): ${fs_mb} MiB file system, ${filler_mb} MiB filler" >&2
  faults "diskfull-$m" --data-dir "$mnt/data" --log "$FAULTS_OUT/diskfull-$m.log" \
    "${extra[@]}" diskfull --filler "$mnt/filler" --rate $rate || failed=1
  umount "$mnt"
done
exit $failed
