#!/usr/bin/env bash
# Reserve and mount 2 MiB hugepages, idempotently. Usage: hugepages/setup.sh [PAGES] (default 1024 = 2 GiB)
# Safe to run again: it only raises the reservation and mounts /dev/hugepages if not mounted.
set -euo pipefail
pages=${1:-${VSW_HUGEPAGES:-1024}}
nr=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ "$(id -u)" -ne 0 ]; then
  echo "hugepages/setup.sh: needs root (try: sudo $0 $pages)" >&2
  exit 1
fi
mkdir -p /dev/hugepages
mountpoint -q /dev/hugepages || mount -t hugetlbfs nodev /dev/hugepages
if [ -w "$nr" ]; then
  cur=$(cat "$nr")
  if [ "$cur" -lt "$pages" ]; then
    echo "$pages" > "$nr" || true
  fi
fi
got=$(cat "$nr" 2>/dev/null || echo 0)
free=$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages 2>/dev/null || echo 0)
echo "hugepages: ${got} x 2 MiB reserved (${free} free), mounted at /dev/hugepages"
if [ "$got" -lt "$pages" ]; then
  echo "hugepages: warning: asked for $pages, the kernel reserved $got (memory fragmented?)" >&2
fi
